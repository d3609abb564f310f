package storage

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/session"
	"github.com/caddy-miniapp/miniapp/store"
	"github.com/caddyserver/certmagic"
)

// TestJournalPrunes deletes a node's segments once all their entries have
// expired, and a stopped node's whole journal once it is an orphan.
func TestJournalPrunes(t *testing.T) {
	storage := &certmagic.FileStorage{Path: t.TempDir()}
	clk := new(session.Clock)
	writer := openStorageBackend(t, storage, clk)
	ctx := context.Background()
	for range 2*segmentLines + 1 {
		if err := writer.Revoke(ctx, [16]byte(random(16)), clk.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	clk.Advance((2 * time.Hour))
	if _, err := writer.Changes(ctx); err != nil {
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
	clk.Advance((orphanAfter + time.Minute))
	if _, err := reader.Changes(ctx); err != nil {
		t.Fatal(err)
	}
	// what stays is the empty folder of heads and the one latest file
	keys, _ := storage.List(ctx, reader.journalDir(), true)
	if len(keys) != 2 || keys[0] != reader.headsDir() || keys[1] != reader.latestKey() {
		t.Errorf("orphan journal kept: %v", keys)
	}
}

// heldStorage holds the first journal segment write until release is
// closed, counts the segment and head writes, and fails the segment
// writes while fail is set.
type heldStorage struct {
	*certmagic.FileStorage
	release         chan struct{}
	mu              sync.Mutex
	segments, heads int
	fail            bool
}

func (s *heldStorage) Store(ctx context.Context, key string, value []byte) error {
	s.mu.Lock()
	isHead, isSegment := strings.Contains(key, "/heads/"), strings.Contains(key, "/journal/") && !strings.HasSuffix(key, "/latest")
	first := false
	switch {
	case isHead:
		s.heads++
	case isSegment:
		s.segments++
		first = s.segments == 1
	}
	s.mu.Unlock()
	if first {
		<-s.release
	}
	s.mu.Lock()
	fail := isSegment && s.fail
	s.mu.Unlock()
	if fail {
		return errDown
	}
	return s.FileStorage.Store(ctx, key, value)
}

// counts are the segment and head writes so far.
func (s *heldStorage) counts() (segments, heads int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.segments, s.heads
}

// eventually waits up to five seconds for cond.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s did not happen", what)
		}
	}
}

func (b *storageBackend) queuedCount() int {
	b.queueMu.Lock()
	defer b.queueMu.Unlock()
	return len(b.queued)
}

// heldWriter is a writer whose journal is at segmentLines-5 entries,
// its storage now held at the next segment write.
func heldWriter(t *testing.T) (*storageBackend, *heldStorage, *certmagic.FileStorage, *session.Clock) {
	t.Helper()
	files := &certmagic.FileStorage{Path: t.TempDir()}
	clk := new(session.Clock)
	writer := openStorageBackend(t, files, clk)
	for range segmentLines - 5 {
		if err := writer.Revoke(context.Background(), [16]byte(random(16)), clk.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	held := &heldStorage{FileStorage: files, release: make(chan struct{})}
	writer.storage = held
	return writer, held, files, clk
}

// TestJournalGroupCommit: entries appended while a journal write is under
// way go out together in the next write (one head write for all, their
// segment writes the rest of the segment and the next one), every caller
// learns its entry is stored, and another node reads each entry.
func TestJournalGroupCommit(t *testing.T) {
	writer, held, files, clk := heldWriter(t)
	ctx := context.Background()
	expires := clk.Now().Add(time.Hour)
	const waiting = 20
	errs := make(chan error, waiting+1)
	go func() { errs <- writer.Revoke(ctx, [16]byte(random(16)), expires) }()
	eventually(t, "the first write", func() bool { n, _ := held.counts(); return n == 1 })
	for range waiting {
		go func() { errs <- writer.Revoke(ctx, [16]byte(random(16)), expires) }()
	}
	eventually(t, "the queue", func() bool { return writer.queuedCount() == waiting })
	close(held.release)
	for range waiting + 1 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	// the held write, then one write of the waiting entries: the rest of
	// the segment, the next segment, one head
	if segments, heads := held.counts(); segments != 3 || heads != 2 {
		t.Errorf("%d segment and %d head writes for one write and %d entries waiting; want 3 and 2", segments, heads, waiting)
	}
	changes, err := openStorageBackend(t, files, clk).Changes(ctx)
	if changes = withoutGeneration(changes); err != nil || len(changes) != segmentLines-5+waiting+1 {
		t.Errorf("read %d entries, %v; want %d", len(changes), err, segmentLines-5+waiting+1)
	}
}

// TestJournalGroupFails: a failed write is each of its callers' error
// (the one that wrote, and the waiters of the next write when it fails
// too), a later write goes on, and a waiter whose request ends leaves
// the queue and is not written.
func TestJournalGroupFails(t *testing.T) {
	writer, held, files, clk := heldWriter(t)
	ctx := context.Background()
	expires := clk.Now().Add(time.Hour)
	held.fail = true
	first := make(chan error, 1)
	go func() { first <- writer.Revoke(ctx, [16]byte(random(16)), expires) }()
	eventually(t, "the first write", func() bool { n, _ := held.counts(); return n == 1 })
	failing := make(chan error, 3)
	for range 3 {
		go func() { failing <- writer.Revoke(ctx, [16]byte(random(16)), expires) }()
	}
	eventually(t, "the queue", func() bool { return writer.queuedCount() == 3 })
	gone, cancel := context.WithCancel(ctx)
	left := make(chan error, 1)
	go func() { left <- writer.Revoke(gone, [16]byte(random(16)), expires) }()
	eventually(t, "the fourth waiter", func() bool { return writer.queuedCount() == 4 })
	cancel()
	if err := <-left; err == nil {
		t.Error("a waiter whose request ended was told its entry is stored")
	}
	if n := writer.queuedCount(); n != 3 {
		t.Errorf("%d waiting after one left; want 3", n)
	}
	close(held.release)
	if err := <-first; err == nil {
		t.Error("a failed write reported stored")
	}
	for range 3 {
		if err := <-failing; err == nil {
			t.Error("a waiter of a failed write reported stored")
		}
	}
	held.mu.Lock()
	held.fail = false
	held.mu.Unlock()
	if err := writer.Revoke(ctx, [16]byte(random(16)), expires); err != nil {
		t.Errorf("the write after failed ones: %v", err)
	}
	changes, err := openStorageBackend(t, files, clk).Changes(ctx)
	if changes = withoutGeneration(changes); err != nil || len(changes) != segmentLines-5+1 {
		t.Errorf("read %d entries, %v; want %d (none of the failed ones, not the one that left)", len(changes), err, segmentLines-5+1)
	}
}

// TestJournalRemembersLongestLifetime: a node's head announces its
// session lifetime, and the sign-outs of a node with a shorter one stay
// in the journal as long as the longest any head announces.
func TestJournalRemembersLongestLifetime(t *testing.T) {
	files := &certmagic.FileStorage{Path: t.TempDir()}
	clk := new(session.Clock)
	long, short := openStorageBackend(t, files, clk), openStorageBackend(t, files, clk)
	short.opts.Remember, short.remember = 3*time.Second, 3*time.Second
	ctx := context.Background()
	if err := long.Revoke(ctx, [16]byte(random(16)), clk.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := short.Changes(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := short.SignOut(ctx, store.AccountID(random(16)), 0); err != nil {
		t.Fatal(err)
	}
	data, err := files.Load(ctx, short.segmentKey(short.node, 0))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(data))
	until, _ := strconv.ParseInt(f[len(f)-1], 10, 64)
	if want := clk.Now().Add(12 * time.Hour).Unix(); until < want-5 {
		t.Errorf("a short-lived site's sign-out kept until %d, want the long site's %d", until, want)
	}
}
