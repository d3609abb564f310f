package storage

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/session"
	"github.com/caddyserver/certmagic"
)

// TestJournalReadsOnlyChanges: a node reads each entry of another node's
// journal once, across segments, and a sync without changes reads the
// latest file alone: no head, no segment, no listing.
func TestJournalReadsOnlyChanges(t *testing.T) {
	storage := &countingStorage{FileStorage: &certmagic.FileStorage{Path: t.TempDir()}}
	clk := new(session.Clock)
	writer, reader := openStorageBackend(t, storage, clk), openStorageBackend(t, storage, clk)
	ctx := context.Background()
	expires := clk.Now().Add(time.Hour)
	revokeN := func(n int) {
		for i := range n {
			if err := writer.Revoke(ctx, [16]byte(random(16)), expires.Add(time.Duration(i)*time.Second)); err != nil {
				t.Fatal(err)
			}
		}
	}
	revokeN(segmentLines + 10)
	changes, err := reader.Changes(ctx)
	if err != nil || len(changes) != segmentLines+10 {
		t.Fatalf("first read: %d changes, %v", len(changes), err)
	}
	revokeN(3)
	storage.loads = 0
	if changes, err = reader.Changes(ctx); err != nil || len(changes) != 3 {
		t.Fatalf("second read: %d changes, %v", len(changes), err)
	}
	storage.loads, storage.lists = 0, 0
	if changes, err = reader.Changes(ctx); err != nil || len(changes) != 0 || storage.loads != 1 || storage.lists != 0 {
		t.Errorf("read without changes: %d changes, %d loads and %d lists (want the latest file alone), %v", len(changes), storage.loads, storage.lists, err)
	}
	// once per heartbeat the heads are read all the same, for orphans
	clk.Advance((heartbeat))
	storage.loads, storage.lists = 0, 0
	if changes, err = reader.Changes(ctx); err != nil || len(changes) != 0 || storage.lists != 1 {
		t.Errorf("read after a heartbeat: %d changes, %d lists, %v; want the heads listed", len(changes), storage.lists, err)
	}
}

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

// TestJournalSkipsBadLines passes over lines that do not parse, a line
// still being written and a head file being written, and reads the rest.
func TestJournalSkipsBadLines(t *testing.T) {
	storage := &certmagic.FileStorage{Path: t.TempDir()}
	clk := new(session.Clock)
	reader := openStorageBackend(t, storage, clk)
	ctx := context.Background()
	id := random(16)
	good := fmt.Sprintf("r %x %d", id, clk.Now().Add(time.Hour).Unix())
	lines := "garbage\nr nothex 1\nc " + fmt.Sprintf("%x", id) + " x 1\n" + good + "\nr half"
	if err := storage.Store(ctx, reader.segmentKey("00000000000000aa", 0), []byte(lines)); err != nil {
		t.Fatal(err)
	}
	head := fmt.Sprintf("0 0 5 %d", clk.Now().Unix())
	if err := storage.Store(ctx, reader.headKey("00000000000000aa"), []byte(head)); err != nil {
		t.Fatal(err)
	}
	// a file being written among the heads is no node
	if err := storage.Store(ctx, reader.headsDir()+"/00000000000000aa.tmp-123", []byte("0 0")); err != nil {
		t.Fatal(err)
	}
	changes, err := reader.Changes(ctx)
	if err != nil || len(changes) != 1 || changes[0].ID != [16]byte(id) {
		t.Errorf("changes %+v, %v; want the one good line", changes, err)
	}
}

// TestJournalKeepsWhatItRead: when one node's journal fails to load, the
// entries read from the others are returned with the error, and the
// failed ones come at the next read.
func TestJournalKeepsWhatItRead(t *testing.T) {
	files := &certmagic.FileStorage{Path: t.TempDir()}
	clk := new(session.Clock)
	first, second := openStorageBackend(t, files, clk), openStorageBackend(t, files, clk)
	ctx := context.Background()
	for _, writer := range []*storageBackend{first, second} {
		if err := writer.Revoke(ctx, [16]byte(random(16)), clk.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	failing := &failingStorage{FileStorage: files, fail: second.node + "/"}
	reader := openStorageBackend(t, failing, clk)
	changes, err := reader.Changes(ctx)
	if err == nil || len(changes) != 1 {
		t.Fatalf("with one journal failing: %d changes, %v; want the other's one and the error", len(changes), err)
	}
	failing.fail = ""
	if changes, err = reader.Changes(ctx); err != nil || len(changes) != 1 {
		t.Errorf("after the failure: %d changes, %v; want the one missed", len(changes), err)
	}
}

// BenchmarkIdleSync measures a sync on Caddy storage when nothing has
// changed, against the number of other instances that have written to
// the journal: its cost is the one latest file, whatever their number.
func BenchmarkIdleSync(b *testing.B) {
	for _, peers := range []int{0, 1, 10, 100} {
		b.Run(fmt.Sprintf("instances=%d", peers), func(b *testing.B) {
			storage := &certmagic.FileStorage{Path: b.TempDir()}
			clk := new(session.Clock)
			ctx := context.Background()
			for range peers {
				if err := openStorageBackend(b, storage, clk).Revoke(ctx, [16]byte(random(16)), clk.Now().Add(time.Hour)); err != nil {
					b.Fatal(err)
				}
			}
			reader := openStorageBackend(b, storage, clk)
			if changes, err := reader.Changes(ctx); err != nil || len(changes) != peers {
				b.Fatalf("first read: %d changes, %v", len(changes), err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := reader.Changes(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
