package users

import (
	"context"
	"testing"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/account"
	"github.com/caddy-miniapp/miniapp/internal/records"
	"github.com/caddy-miniapp/miniapp/internal/session"
	"github.com/caddy-miniapp/miniapp/internal/testhash"
	"github.com/caddy-miniapp/miniapp/store"
	"github.com/caddy-miniapp/miniapp/store/storage"
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
)

// secret is the realm's key in the tests.
var secret = []byte("0123456789abcdef0123456789abcdef")

// node is a service of realm r over the store in dir, on clk, with ada
// configured.
func node(t *testing.T, dir string, clk *session.Clock) *Service {
	t.Helper()
	return nodeIn(t, dir, clk, "r", time.Hour)
}

// nodeIn is a service of the realm over the store in dir, on clk, with
// ada configured; every tells two nodes of one realm on one folder apart
// (the process shares a realm of one place and options), each with its
// own copy of the records.
func nodeIn(t *testing.T, dir string, clk *session.Clock, name string, every time.Duration) *Service {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	realm, err := store.Join(ctx, storage.New(&certmagic.FileStorage{Path: dir}), store.Options{Realm: name, Every: every,
		Remember: time.Hour, Now: clk.Now, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = realm.Release() })
	keys, err := session.NewKeyring([][]byte{secret}, name)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := account.Load([]account.Config{{Username: "ada", Password: testhash.Bcrypt("lovelace")}}, name, caddy.NewReplacer())
	if err != nil {
		t.Fatal(err)
	}
	s := &Service{Realm: name, Records: &records.Store{Realm: realm, Keys: keys, Logger: zap.NewNop()}, Config: cfg, Hash: Argon2id, Clock: clk}
	cfg.Manage(s)
	return s
}

// TestHeld: what this node holds of the managed users: none at first;
// then each by name, made once per version of its record and again
// after a change; a record that does not open is left out.
func TestHeld(t *testing.T) {
	s := node(t, t.TempDir(), new(session.Clock))
	ctx := context.Background()
	if s.Some() || s.Exists("lin") || len(s.List()) != 0 {
		t.Fatal("a new realm has managed users")
	}
	if _, err := s.Create(ctx, "lin", Profile{}, time.Hour); err != nil {
		t.Fatal(err)
	}
	first, ok := s.Lookup("lin")
	if !ok || !s.Some() || !s.Exists("lin") || !first.Managed || first.HasPassword() {
		t.Fatalf("lin after her invite: %+v %v", first, ok)
	}
	if again, _ := s.Lookup("lin"); again != first {
		t.Error("the same record was opened again")
	}
	email := "lin@example.test"
	if err := s.Update(ctx, "lin", Profile{Email: &email}); err != nil {
		t.Fatal(err)
	}
	if changed, _ := s.Lookup("lin"); changed == first || changed.Email != email {
		t.Errorf("after a change: %+v, want the account made anew", changed)
	}
	list := s.List()
	if len(list) != 1 || list[0].Name != "lin" || list[0].Email != email || list[0].Password || list[0].Account == nil {
		t.Errorf("List = %+v", list)
	}
	if ok, err := s.Records.Realm.SwapRecord(ctx, Key("mia"), nil, []byte("not sealed")); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if _, ok := s.Lookup("mia"); ok || !s.Exists("mia") || len(s.List()) != 1 {
		t.Error("a record that does not open is listed")
	}
	var n int
	for range s.Accounts() {
		n++
	}
	if n != 1 {
		t.Errorf("%d accounts, want lin alone", n)
	}
}
