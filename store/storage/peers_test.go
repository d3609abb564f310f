package storage

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/session"
	"github.com/caddy-miniapp/miniapp/store"
	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
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
	if changes = withoutGeneration(changes); err != nil || len(changes) != segmentLines+10 {
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
	if changes = withoutGeneration(changes); err != nil || len(changes) != 1 || changes[0].ID != [16]byte(id) {
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
	if changes = withoutGeneration(changes); err == nil || len(changes) != 1 {
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
			if changes, err := reader.Changes(ctx); err != nil || len(withoutGeneration(changes)) != peers {
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

// withoutGeneration leaves out the generation a first read reports.
func withoutGeneration(changes []store.Change) []store.Change {
	return slices.DeleteFunc(changes, func(c store.Change) bool { return c.Generation != 0 })
}

// TestJournalLyingHeads: heads and segments of other nodes that cannot
// be true cost one bounded read and one warning each, never a loop: a
// head naming 2^64 segments, one naming segments that do not exist, one
// claiming more lines than its segment holds, an oversized segment and
// a head that does not parse. The honest node's entries still arrive.
func TestJournalLyingHeads(t *testing.T) {
	files := &certmagic.FileStorage{Path: t.TempDir()}
	clk := new(session.Clock)
	writer := openStorageBackend(t, files, clk)
	core, logs := observer.New(zap.DebugLevel)
	reader := openStorageBackend(t, files, clk)
	reader.opts.Logger = zap.New(core)
	ctx := context.Background()
	for range 3 {
		if err := writer.Revoke(ctx, [16]byte(random(16)), clk.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	now := clk.Now().Unix()
	line := fmt.Sprintf("r %x %d\n", random(16), now+3600)
	lies := map[string]struct{ head, segment string }{
		"00000000000000b1": {fmt.Sprintf("0 18446744073709551615 0 %d", now), ""},
		"00000000000000b2": {fmt.Sprintf("0 900000 0 %d", now), line},
		"00000000000000b3": {fmt.Sprintf("0 0 200 %d", now), line + line},
		"00000000000000b4": {fmt.Sprintf("0 0 5 %d", now), strings.Repeat(line, maxSegmentBytes/len(line)+1)},
		"00000000000000b5": {"garbage", line},
	}
	for node, lie := range lies {
		if err := files.Store(ctx, reader.headKey(node), []byte(lie.head)); err != nil {
			t.Fatal(err)
		}
		if lie.segment != "" {
			if err := files.Store(ctx, reader.segmentKey(node, 0), []byte(lie.segment)); err != nil {
				t.Fatal(err)
			}
		}
	}
	timed, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	start := time.Now()
	changes, err := reader.Changes(timed)
	if err != nil || time.Since(start) > 5*time.Second {
		t.Fatalf("a read among lying heads: %v after %v", err, time.Since(start))
	}
	// the honest node's 3, one from b2's one segment and two from b3's
	if got := len(withoutGeneration(changes)); got != 3+1+2 {
		t.Errorf("%d changes, want 6", got)
	}
	if n := logs.FilterMessageSnippet("journal").Len(); n != 5 {
		t.Errorf("%d warnings, want one per lie: %v", n, logs.All())
	}
	// the next reads cost no more warnings
	_ = writer.Revoke(ctx, [16]byte(random(16)), clk.Now().Add(time.Hour))
	if _, err := reader.Changes(timed); err != nil {
		t.Fatal(err)
	}
	if n := logs.FilterMessageSnippet("journal").Len(); n != 5 {
		t.Errorf("%d warnings after a second read, want the same 5", n)
	}
	// a read whose context has ended returns at once
	ended, stop := context.WithCancel(ctx)
	stop()
	if _, err := reader.Changes(ended); err == nil {
		t.Error("a read with its context ended reported no error")
	}
}

// TestJournalImpossibleValues: entries that cannot be true are refused
// like a forged cookie: a sign-out counter at the top of its range (in
// the journal and in the durable counter), an address with a zone or
// with control characters, a time past the year 9999.
func TestJournalImpossibleValues(t *testing.T) {
	files := &certmagic.FileStorage{Path: t.TempDir()}
	clk := new(session.Clock)
	reader := openStorageBackend(t, files, clk)
	ctx := context.Background()
	acct := random(16)
	now := clk.Now().Unix()
	lines := []string{
		fmt.Sprintf("c %x 4294967295 %d", acct, now+60),
		fmt.Sprintf("r %x 99999999999999", random(16)),
		fmt.Sprintf("s %x %x 1 %d %d 0 fe80::1%%eth0 Firefox on Linux", random(16), acct, now, now+60),
		fmt.Sprintf("s %x %x 1 %d %d 0 10.0.0.1\x1b[31m Firefox on Linux", random(16), acct, now, now+60),
	}
	if err := files.Store(ctx, reader.segmentKey("00000000000000c1", 0), []byte(strings.Join(lines, "\n")+"\n")); err != nil {
		t.Fatal(err)
	}
	if err := files.Store(ctx, reader.headKey("00000000000000c1"), []byte(fmt.Sprintf("0 0 %d %d", len(lines), now))); err != nil {
		t.Fatal(err)
	}
	changes, err := reader.Changes(ctx)
	changes = withoutGeneration(changes)
	if err != nil || len(changes) != 2 {
		t.Fatalf("changes %+v, %v; want the two logins alone", changes, err)
	}
	for _, c := range changes {
		if c.Login == nil || c.Login.Address != "" {
			t.Errorf("change %+v: want a login without its address", c)
		}
	}
	if err := files.Store(ctx, reader.counterKey(store.AccountID(acct)), []byte("4294967295")); err != nil {
		t.Fatal(err)
	}
	if n, err := reader.Counter(ctx, store.AccountID(acct)); err != nil || n != 0 {
		t.Errorf("an impossible durable counter read as %d, %v", n, err)
	}
	if n, err := reader.SignOut(ctx, store.AccountID(acct), 1); err != nil || n != 1 {
		t.Errorf("sign-out over an impossible counter: %d, %v; want 1", n, err)
	}
	if err := files.Store(ctx, reader.counterKey(store.AccountID(acct)), []byte(strconv.Itoa(store.MaxCounter))); err != nil {
		t.Fatal(err)
	}
	if n, err := reader.SignOut(ctx, store.AccountID(acct), 3); err != nil || n != 3 {
		t.Errorf("sign-out over a counter at the limit: %d, %v; want 3", n, err)
	}
}
