package storage

import (
	"context"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddy-miniapp/miniapp/internal/session"
	"github.com/caddy-miniapp/miniapp/store"
	"github.com/caddyserver/certmagic"
)

// recordsOf are the records a node that starts on the storage finds.
func recordsOf(t *testing.T, storage certmagic.Storage) map[string]string {
	t.Helper()
	changes, err := openStorageBackend(t, storage, new(session.Clock)).Changes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, c := range changes {
		if c.Record != "" {
			out[c.Record] = string(c.Value)
		}
	}
	return out
}

// TestLongRecordKeys: a key too long for a hex file name (a user name of
// 150 bytes and more) is stored under a digest name with the key inside,
// read, listed by a node that starts later, replaced and removed; a file
// whose key does not match its name is no record of that key.
func TestLongRecordKeys(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	storage := &certmagic.FileStorage{Path: dir}
	b := openStorageBackend(t, storage, new(session.Clock))
	for _, key := range []string{"totp:" + strings.Repeat("é", 75), "passkeys:" + strings.Repeat("a", store.MaxRecord/64)} {
		if ok, err := b.SwapRecord(ctx, key, nil, []byte("v1")); !ok || err != nil {
			t.Fatalf("storing %d bytes' key: %v %v", len(key), ok, err)
		}
		if got, err := b.Record(ctx, key); string(got) != "v1" || err != nil {
			t.Errorf("reading it: %q %v", got, err)
		}
		if got := recordsOf(t, storage)[key]; got != "v1" {
			t.Errorf("a new node lists %d bytes' key as %q", len(key), got)
		}
		if ok, err := b.SwapRecord(ctx, key, []byte("v1"), []byte("v2")); !ok || err != nil {
			t.Errorf("replacing it: %v %v", ok, err)
		}
		if ok, err := b.SwapRecord(ctx, key, []byte("v2"), nil); !ok || err != nil {
			t.Errorf("removing it: %v %v", ok, err)
		}
		if got, err := b.Record(ctx, key); got != nil || err != nil {
			t.Errorf("after its removal: %q %v", got, err)
		}
	}
	long := "totp:" + strings.Repeat("b", 200)
	if err := storage.Store(ctx, b.recordKey(long), keyed("totp:"+strings.Repeat("c", 200), []byte("forged"))); err != nil {
		t.Fatal(err)
	}
	if got, err := b.Record(ctx, long); err == nil {
		t.Errorf("a file that holds another key: %q", got)
	}
	if _, listed := recordsOf(t, storage)["totp:"+strings.Repeat("c", 200)]; listed {
		t.Error("a file that holds another key than its name's is listed")
	}
}

// TestRecordsOfOlderVersion: a storage folder as e53f710 wrote it (every
// record named by the hex of its key, 127 bytes' keys the longest that
// fit) is read as it is: no record is hidden from a node of this
// version during a rolling upgrade.
func TestRecordsOfOlderVersion(t *testing.T) {
	dir := t.TempDir()
	records := filepath.Join(dir, "miniapp", "miniapp", "records")
	if err := os.MkdirAll(records, 0o700); err != nil {
		t.Fatal(err)
	}
	keys := []string{"totp:ada", "passkeys:ada", "totp:" + strings.Repeat("x", 122)}
	for _, key := range keys {
		if err := os.WriteFile(filepath.Join(records, hex.EncodeToString([]byte(key))), []byte("sealed "+key), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	storage := &certmagic.FileStorage{Path: dir}
	found := recordsOf(t, storage)
	b := openStorageBackend(t, storage, new(session.Clock))
	for _, key := range keys {
		got, err := b.Record(context.Background(), key)
		if string(got) != "sealed "+key || err != nil || found[key] != "sealed "+key {
			t.Errorf("the older version's record of %d bytes' key: %q %v, listed %q", len(key), got, err, found[key])
		}
	}
}
