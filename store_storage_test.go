package miniapp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
)

// openStorageBackend opens the default realm's journal on storage as a
// node of its own.
func openStorageBackend(t testing.TB, storage certmagic.Storage, clk *clock) *storageBackend {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	b, err := (&StorageStore{storage: storage}).open(ctx, storeOptions{
		realm: defaultRealm, every: time.Second, remember: 12 * time.Hour, clock: clk, logger: zap.NewNop(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.(*storageBackend)
}

// lockingStorage is a file storage whose Lock fails the first failures
// times, as the file storage does when it reads a lock file that another
// instance is still writing.
type lockingStorage struct {
	*certmagic.FileStorage
	failures int
	onFail   func()
}

func (s *lockingStorage) Lock(ctx context.Context, name string) error {
	if s.failures > 0 {
		s.failures--
		if s.onFail != nil {
			s.onFail()
		}
		return errors.New("decoding lockfile contents: unexpected EOF")
	}
	return s.FileStorage.Lock(ctx, name)
}

// TestStorageKeySetRetriesLock makes the key set after failed locks,
// takes the one another instance made meanwhile, and gives up when the
// lock never succeeds.
func TestStorageKeySetRetriesLock(t *testing.T) {
	ctx := context.Background()
	create := func() ([]byte, error) { return newKeySet() }
	flaky := &lockingStorage{FileStorage: &certmagic.FileStorage{Path: t.TempDir()}, failures: 2}
	if _, err := openStorageBackend(t, flaky, new(clock)).keySet(ctx, create); err != nil || flaky.failures != 0 {
		t.Fatalf("key set not made after two failed locks: %v", err)
	}

	other := &certmagic.FileStorage{Path: t.TempDir()}
	theirs, _ := newKeySet()
	racing := &lockingStorage{FileStorage: other, failures: 100, onFail: func() { _ = other.Store(ctx, keysKey(defaultRealm), theirs) }}
	ours, err := openStorageBackend(t, racing, new(clock)).keySet(ctx, create)
	if err != nil || !bytes.Equal(ours, theirs) {
		t.Fatalf("did not take the other instance's key set: %v", err)
	}
	never := &lockingStorage{FileStorage: &certmagic.FileStorage{Path: t.TempDir()}, failures: 100}
	if _, err := openStorageBackend(t, never, new(clock)).keySet(ctx, create); err == nil {
		t.Error("no error when the lock never succeeds")
	}
}

// TestJournalReadsOnlyChanges: a node reads each entry of another node's
// journal once, across segments, and a sync without changes reads no
// segment at all.
func TestJournalReadsOnlyChanges(t *testing.T) {
	storage := &countingStorage{FileStorage: &certmagic.FileStorage{Path: t.TempDir()}}
	clk := new(clock)
	writer, reader := openStorageBackend(t, storage, clk), openStorageBackend(t, storage, clk)
	ctx := context.Background()
	expires := clk.now().Add(time.Hour)
	revokeN := func(n int) {
		for i := range n {
			if err := writer.revoke(ctx, [16]byte(randomBytes(16)), expires.Add(time.Duration(i)*time.Second)); err != nil {
				t.Fatal(err)
			}
		}
	}
	revokeN(segmentLines + 10)
	changes, err := reader.changes(ctx)
	if err != nil || len(changes) != segmentLines+10 {
		t.Fatalf("first read: %d changes, %v", len(changes), err)
	}
	revokeN(3)
	storage.loads = 0
	if changes, err = reader.changes(ctx); err != nil || len(changes) != 3 {
		t.Fatalf("second read: %d changes, %v", len(changes), err)
	}
	storage.loads = 0
	if changes, err = reader.changes(ctx); err != nil || len(changes) != 0 || storage.loads != 1 {
		t.Errorf("read without changes: %d changes, %d loads (want the head alone), %v", len(changes), storage.loads, err)
	}
}

// TestJournalPrunes deletes a node's segments once all their entries have
// expired, and a stopped node's whole journal once it is an orphan.
func TestJournalPrunes(t *testing.T) {
	storage := &certmagic.FileStorage{Path: t.TempDir()}
	clk := new(clock)
	writer := openStorageBackend(t, storage, clk)
	ctx := context.Background()
	for range 2*segmentLines + 1 {
		if err := writer.revoke(ctx, [16]byte(randomBytes(16)), clk.now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	clk.offset.Add(int64(2 * time.Hour))
	if _, err := writer.changes(ctx); err != nil {
		t.Fatal(err)
	}
	for seq := range uint64(2) {
		if _, err := storage.Load(ctx, writer.segmentKey(writer.node, seq)); err == nil {
			t.Errorf("expired segment %d kept", seq)
		}
	}
	if head, err := writer.loadHead(ctx, writer.node); err != nil || head.first != 2 || head.last != 2 {
		t.Errorf("head after pruning: %+v %v", head, err)
	}

	// the writer stops; an hour later another node removes its journal
	reader := openStorageBackend(t, storage, clk)
	clk.offset.Add(int64(orphanAfter + time.Minute))
	if _, err := reader.changes(ctx); err != nil {
		t.Fatal(err)
	}
	if keys, _ := storage.List(ctx, reader.journalDir(), true); len(keys) != 1 || keys[0] != reader.headsDir() {
		t.Errorf("orphan journal kept: %v", keys)
	}
}

// TestJournalSkipsBadLines passes over lines that do not parse and a line
// still being written, and reads the rest.
func TestJournalSkipsBadLines(t *testing.T) {
	storage := &certmagic.FileStorage{Path: t.TempDir()}
	clk := new(clock)
	reader := openStorageBackend(t, storage, clk)
	ctx := context.Background()
	id := randomBytes(16)
	good := fmt.Sprintf("r %x %d", id, clk.now().Add(time.Hour).Unix())
	lines := "garbage\nr nothex 1\nc " + fmt.Sprintf("%x", id) + " x 1\n" + good + "\nr half"
	if err := storage.Store(ctx, reader.segmentKey("peer", 0), []byte(lines)); err != nil {
		t.Fatal(err)
	}
	head := fmt.Sprintf("0 0 5 %d", clk.now().Unix())
	if err := storage.Store(ctx, reader.headKey("peer"), []byte(head)); err != nil {
		t.Fatal(err)
	}
	changes, err := reader.changes(ctx)
	if err != nil || len(changes) != 1 || changes[0].id != [16]byte(id) {
		t.Errorf("changes %+v, %v; want the one good line", changes, err)
	}
}

// countingStorage counts the loads of a file storage.
type countingStorage struct {
	*certmagic.FileStorage
	loads int
}

func (s *countingStorage) Load(ctx context.Context, key string) ([]byte, error) {
	s.loads++
	return s.FileStorage.Load(ctx, key)
}
