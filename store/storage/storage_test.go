package storage

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/session"
	"github.com/caddy-miniapp/miniapp/store"
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
)

// openStorageBackend opens the default realm's journal on storage as a
// node of its own.
func openStorageBackend(t testing.TB, storage certmagic.Storage, clk *session.Clock) *storageBackend {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	b, err := New(storage).Open(ctx, store.Options{
		Realm: "miniapp", Every: time.Second, Remember: 12 * time.Hour, Now: clk.Now, Logger: zap.NewNop(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.(*storageBackend)
}

// countingStorage counts the loads and lists of a file storage.
type countingStorage struct {
	*certmagic.FileStorage
	loads, lists int
}

func (s *countingStorage) List(ctx context.Context, prefix string, recursive bool) ([]string, error) {
	s.lists++
	return s.FileStorage.List(ctx, prefix, recursive)
}

func (s *countingStorage) Load(ctx context.Context, key string) ([]byte, error) {
	s.loads++
	return s.FileStorage.Load(ctx, key)
}

// errDown is the error of a storage that fails.
var errDown = errors.New("storage is down")

// failingStorage is a file storage whose loads and stores of keys that
// contain fail return an error.
type failingStorage struct {
	*certmagic.FileStorage
	fail string
}

func (s *failingStorage) Load(ctx context.Context, key string) ([]byte, error) {
	if s.fail != "" && strings.Contains(key, s.fail) {
		return nil, errDown
	}
	return s.FileStorage.Load(ctx, key)
}

func (s *failingStorage) Store(ctx context.Context, key string, value []byte) error {
	if s.fail != "" && strings.Contains(key, s.fail) {
		return errDown
	}
	return s.FileStorage.Store(ctx, key, value)
}

// TestSignOutAnnouncedOnce: when the journal write of a sign-out fails,
// the counter stays raised once and the entry is written at the next
// read of changes.
func TestSignOutAnnouncedOnce(t *testing.T) {
	failing := &failingStorage{FileStorage: &certmagic.FileStorage{Path: t.TempDir()}, fail: "/journal/"}
	clk := new(session.Clock)
	writer, reader := openStorageBackend(t, failing, clk), openStorageBackend(t, failing.FileStorage, clk)
	ctx := context.Background()
	acct := store.AccountID(random(16))
	if n, err := writer.SignOut(ctx, acct, 0); err != nil || n != 1 {
		t.Fatalf("sign-out with the journal failing: %d %v", n, err)
	}
	failing.fail = ""
	if _, err := writer.Changes(ctx); err != nil {
		t.Fatal(err)
	}
	changes, err := reader.Changes(ctx)
	changes = withoutGeneration(changes)
	if err != nil || len(changes) != 1 || changes[0].Counter != 1 {
		t.Errorf("the sign-out reached the others as %+v, %v; want counter 1", changes, err)
	}
	if n, _ := reader.Counter(ctx, acct); n != 1 {
		t.Errorf("counter %d after one sign-out, want 1", n)
	}
}

// FuzzJournal reads arbitrary heads and journal lines: no panic, and a
// head it accepts is one a sync can read in bounded steps.
func FuzzJournal(f *testing.F) {
	for _, s := range []string{"0 3 17 1796000000", "0 3 17 1796000000 43200", "0 18446744073709551615 0 1", "r 00 1", "c " + strings.Repeat("ab", 16) + " 4294967295 1",
		"s " + strings.Repeat("ab", 16) + " " + strings.Repeat("cd", 16) + " 1 1 2 ::1 Firefox on Linux"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if h, err := parseHead(s); err == nil {
			if h.first > h.last || h.last-h.first > maxSegments || h.lines > segmentLines || h.lines < 0 {
				t.Fatalf("head %q accepted as %+v", s, h)
			}
		}
		if c, until, ok := parseJournalLine(s); ok {
			if c.Counter > store.MaxCounter || until < 0 || until > lastTime || (c.Login != nil && strings.ContainsAny(c.Login.Address+c.Login.Device, "\x00\x1b\n%")) {
				t.Fatalf("line %q accepted as %+v until %d", s, c, until)
			}
		}
	})
}
