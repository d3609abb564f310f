package records

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/account"
	"github.com/caddy-miniapp/miniapp/internal/session"
	"github.com/caddy-miniapp/miniapp/store"
	"github.com/caddy-miniapp/miniapp/store/storage"
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// node joins the realm kept in dir, with the keys (first seals).
func node(t *testing.T, dir string, logger *zap.Logger, secrets ...[]byte) *Store {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	realm, err := store.Join(ctx, storage.New(&certmagic.FileStorage{Path: dir}), store.Options{Realm: "r", Every: time.Hour,
		Remember: time.Hour, Now: time.Now, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	keys, err := session.NewKeyring(secrets, "r")
	if err != nil {
		t.Fatal(err)
	}
	return &Store{Realm: realm, Keys: keys, Logger: logger}
}

func TestSwapOpenReseal(t *testing.T) {
	dir := t.TempDir()
	oldKey, newKey := make([]byte, 32), make([]byte, 32)
	newKey[0] = 1
	a := node(t, dir, zap.NewNop(), oldKey)
	b := node(t, dir, zap.NewNop(), oldKey)
	ctx := context.Background()
	put := func(s *Store, v string) error {
		return s.Swap(ctx, "k", func([]byte) ([]byte, error) { return s.Seal("k", v), nil })
	}
	if err := put(a, "one"); err != nil {
		t.Fatal(err)
	}
	// b holds no record yet: its swap reads the store again and sees a's
	var seen string
	err := b.Swap(ctx, "k", func(sealed []byte) ([]byte, error) {
		seen = ""
		if sealed != nil {
			if err := b.Open("k", sealed, &seen); err != nil {
				return nil, err
			}
		}
		return b.Seal("k", seen+"+two"), nil
	})
	if err != nil || seen != "one" {
		t.Fatalf("swap from a stale copy: %v, saw %q", err, seen)
	}
	var got string
	if err := b.Open("k", b.Get("k"), &got); err != nil || got != "one+two" {
		t.Fatalf("open: %q %v", got, err)
	}
	// the record is bound to its name and to the keys
	if err := b.Open("other", b.Get("k"), &got); !errors.Is(err, ErrUnreadable) {
		t.Errorf("open under another name: %v", err)
	}
	stop := errors.New("no")
	if err := b.Swap(ctx, "k", func([]byte) ([]byte, error) { return nil, stop }); err != stop {
		t.Errorf("next's error: %v", err)
	}
	// a node whose first key is new seals the record again with it
	core, logs := observer.New(zap.InfoLevel)
	c := node(t, dir, zap.New(core), newKey, oldKey)
	c.Reseal(ctx)
	if logs.FilterMessageSnippet("sealed again").Len() != 1 {
		t.Fatalf("reseal logged %d", logs.Len())
	}
	d := node(t, dir, zap.NewNop(), newKey)
	if err := d.Open("k", d.Get("k"), &got); err != nil || got != "one+two" {
		t.Errorf("open with the new key alone: %q %v", got, err)
	}
	if err := d.Swap(ctx, "k", func([]byte) ([]byte, error) { return nil, nil }); err != nil || d.Get("k") != nil {
		t.Errorf("remove: %v", err)
	}
}

// accounts finds accounts by name in a map.
type accounts map[string]*account.Account

func (a accounts) Lookup(name string) (*account.Account, bool) {
	acct, ok := a[name]
	return acct, ok
}

// TestKey: a user's record is named by the user's account (a managed
// one by its immutable ID), and by the name where there is none.
func TestKey(t *testing.T) {
	mia, err := account.Managed("r", account.ManagedConfig{Name: "mia", UID: [16]byte{7}})
	if err != nil {
		t.Fatal(err)
	}
	s := &Store{Accounts: accounts{"mia": mia, "ada": {Name: "ada"}}}
	if got := s.Key("totp", "mia"); got != mia.RecordKey("totp") || got == "totp:mia" {
		t.Errorf("a managed account's key: %q", got)
	}
	if got := s.Key("passkeys", "ada"); got != "passkeys:ada" {
		t.Errorf("a configured account's key: %q", got)
	}
	if got := s.Key("oidc-grants", "github:42"); got != "oidc-grants:github:42" {
		t.Errorf("a name without an account: %q", got)
	}
}
