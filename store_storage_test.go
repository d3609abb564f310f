package miniapp

import (
	"context"
	"fmt"
	"strings"
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

// TestJournalSkipsBadLines passes over lines that do not parse, a line
// still being written and a head file being written, and reads the rest.
func TestJournalSkipsBadLines(t *testing.T) {
	storage := &certmagic.FileStorage{Path: t.TempDir()}
	clk := new(clock)
	reader := openStorageBackend(t, storage, clk)
	ctx := context.Background()
	id := randomBytes(16)
	good := fmt.Sprintf("r %x %d", id, clk.now().Add(time.Hour).Unix())
	lines := "garbage\nr nothex 1\nc " + fmt.Sprintf("%x", id) + " x 1\n" + good + "\nr half"
	if err := storage.Store(ctx, reader.segmentKey("00000000000000aa", 0), []byte(lines)); err != nil {
		t.Fatal(err)
	}
	head := fmt.Sprintf("0 0 5 %d", clk.now().Unix())
	if err := storage.Store(ctx, reader.headKey("00000000000000aa"), []byte(head)); err != nil {
		t.Fatal(err)
	}
	// a file being written among the heads is no node
	if err := storage.Store(ctx, reader.headsDir()+"/00000000000000aa.tmp-123", []byte("0 0")); err != nil {
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

// failingStorage is a file storage whose loads and stores of keys that
// contain fail return an error.
type failingStorage struct {
	*certmagic.FileStorage
	fail string
}

func (s *failingStorage) Load(ctx context.Context, key string) ([]byte, error) {
	if s.fail != "" && strings.Contains(key, s.fail) {
		return nil, errStorageDown
	}
	return s.FileStorage.Load(ctx, key)
}

func (s *failingStorage) Store(ctx context.Context, key string, value []byte) error {
	if s.fail != "" && strings.Contains(key, s.fail) {
		return errStorageDown
	}
	return s.FileStorage.Store(ctx, key, value)
}

// TestJournalKeepsWhatItRead: when one node's journal fails to load, the
// entries read from the others are returned with the error, and the
// failed ones come at the next read.
func TestJournalKeepsWhatItRead(t *testing.T) {
	files := &certmagic.FileStorage{Path: t.TempDir()}
	clk := new(clock)
	first, second := openStorageBackend(t, files, clk), openStorageBackend(t, files, clk)
	ctx := context.Background()
	for _, writer := range []*storageBackend{first, second} {
		if err := writer.revoke(ctx, [16]byte(randomBytes(16)), clk.now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	failing := &failingStorage{FileStorage: files, fail: second.node + "/"}
	reader := openStorageBackend(t, failing, clk)
	changes, err := reader.changes(ctx)
	if err == nil || len(changes) != 1 {
		t.Fatalf("with one journal failing: %d changes, %v; want the other's one and the error", len(changes), err)
	}
	failing.fail = ""
	if changes, err = reader.changes(ctx); err != nil || len(changes) != 1 {
		t.Errorf("after the failure: %d changes, %v; want the one missed", len(changes), err)
	}
}

// TestSignOutAnnouncedOnce: when the journal write of a sign-out fails,
// the counter stays raised once and the entry is written at the next
// read of changes.
func TestSignOutAnnouncedOnce(t *testing.T) {
	failing := &failingStorage{FileStorage: &certmagic.FileStorage{Path: t.TempDir()}, fail: "/journal/"}
	clk := new(clock)
	writer, reader := openStorageBackend(t, failing, clk), openStorageBackend(t, failing.FileStorage, clk)
	ctx := context.Background()
	acct := accountID(randomBytes(16))
	if n, err := writer.signOut(ctx, acct, 0); err != nil || n != 1 {
		t.Fatalf("sign-out with the journal failing: %d %v", n, err)
	}
	failing.fail = ""
	if _, err := writer.changes(ctx); err != nil {
		t.Fatal(err)
	}
	changes, err := reader.changes(ctx)
	if err != nil || len(changes) != 1 || changes[0].counter != 1 {
		t.Errorf("the sign-out reached the others as %+v, %v; want counter 1", changes, err)
	}
	if n, _ := reader.counter(ctx, acct); n != 1 {
		t.Errorf("counter %d after one sign-out, want 1", n)
	}
}
