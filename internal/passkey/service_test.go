package passkey

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"strings"
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
	"go.uber.org/zap/zaptest/observer"
)

var (
	adaHash   = testhash.Bcrypt("lovelace-1815")
	graceHash = testhash.Bcrypt("hopper-1906")
)

// loadAccounts loads ada and grace with the hashes, in realm r.
func loadAccounts(t *testing.T, ada, grace string) *account.Set {
	t.Helper()
	set, err := account.Load([]account.Config{{Username: "ada", Password: ada, Name: "Ada Lovelace"}, {Username: "grace", Password: grace}}, "r",
		caddy.NewReplacer())
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// fixture is a realm's passkeys as the root wires them, over a realm
// kept in a folder of the test, with its accounts and logs.
type fixture struct {
	s        *Service
	accounts *account.Set
	logs     *observer.ObservedLogs
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	clk := new(session.Clock)
	realm, err := store.Join(ctx, storage.New(&certmagic.FileStorage{Path: t.TempDir()}), store.Options{Realm: "r", Every: time.Hour,
		Remember: 12 * time.Hour, Now: clk.Now, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = realm.Release() })
	keys, err := session.NewKeyring([][]byte{session.Random(32)}, "r")
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.DebugLevel)
	logger := zap.New(core)
	accounts := loadAccounts(t, adaHash, graceHash)
	s := &Service{Records: &records.Store{Realm: realm, Keys: keys, Logger: logger, Accounts: accounts}, Clock: clk, Logger: logger}
	s.SetAccounts(accounts.All())
	return &fixture{s: s, accounts: accounts, logs: logs}
}

// acct is the fixture's account of the name.
func (f *fixture) acct(t *testing.T, name string) *account.Account {
	t.Helper()
	a, ok := f.accounts.Lookup(name)
	if !ok {
		t.Fatalf("no account %q", name)
	}
	return a
}

// put stores the user's passkeys as they are.
func (f *fixture) put(t *testing.T, user string, keys ...Key) {
	t.Helper()
	if err := f.s.Swap(context.Background(), user, func([]Key) ([]Key, error) { return keys, nil }); err != nil {
		t.Fatal(err)
	}
}

// spoil replaces the record named key with one that does not open.
func (f *fixture) spoil(t *testing.T, key string) {
	t.Helper()
	if err := f.s.Records.Swap(context.Background(), key, func([]byte) ([]byte, error) { return []byte("edited in the store"), nil }); err != nil {
		t.Fatal(err)
	}
}

// key is a passkey of the account.
func key(acct *account.Account, id byte, verified bool) Key {
	return Key{ID: []byte{id, id, id}, PublicKey: []byte{1}, Account: acct.ID.Tag(), UserVerified: verified, Name: "key " + string('a'+rune(id)),
		Created: 1_700_000_000}
}

// TestOfSwap: none, keys stored and read back, a swap that leaves none
// removes the record, a change's error stores nothing, a record that
// does not open is records.ErrUnreadable.
func TestOfSwap(t *testing.T) {
	f := newFixture(t)
	ada := f.acct(t, "ada")
	ctx := context.Background()
	if keys, sealed, err := f.s.Of("ada"); keys != nil || sealed != nil || err != nil {
		t.Errorf("none: %v %q %v", keys, sealed, err)
	}
	f.put(t, "ada", key(ada, 1, true), key(ada, 2, false))
	keys, sealed, err := f.s.Of("ada")
	if err != nil || len(keys) != 2 || !bytes.Equal(keys[1].ID, []byte{2, 2, 2}) || sealed == nil {
		t.Fatalf("stored: %+v %v", keys, err)
	}
	if bytes.Contains(sealed, []byte("key b")) {
		t.Error("the record is stored in clear")
	}
	stop := errors.New("stop")
	if err := f.s.Swap(ctx, "ada", func([]Key) ([]Key, error) { return nil, stop }); err != stop {
		t.Errorf("a change's error: %v", err)
	}
	if keys, _, _ := f.s.Of("ada"); len(keys) != 2 {
		t.Error("a failed change stored something")
	}
	if err := f.s.Swap(ctx, "ada", func([]Key) ([]Key, error) { return []Key{}, nil }); err != nil {
		t.Fatal(err)
	}
	if f.s.Records.Get("passkeys:ada") != nil {
		t.Error("a swap to no passkeys left the record")
	}
	f.spoil(t, "passkeys:ada")
	if _, _, err := f.s.Of("ada"); !errors.Is(err, records.ErrUnreadable) {
		t.Errorf("a record that does not open: %v", err)
	}
	if err := f.s.Swap(ctx, "ada", func(k []Key) ([]Key, error) { return k, nil }); !errors.Is(err, records.ErrUnreadable) {
		t.Errorf("a swap over a record that does not open: %v", err)
	}
}

// TestVerifying: only a passkey of the account as configured now that
// verifies its user is a second factor.
func TestVerifying(t *testing.T) {
	old := loadAccounts(t, testhash.Bcrypt("lovelace-1815"), graceHash)
	oldAda, _ := old.Lookup("ada")
	for _, tc := range []struct {
		name string
		keys func(ada *account.Account) []Key
		want bool
	}{
		{"none", func(*account.Account) []Key { return nil }, false},
		{"one that verifies", func(ada *account.Account) []Key { return []Key{key(ada, 1, true)} }, true},
		{"one that does not", func(ada *account.Account) []Key { return []Key{key(ada, 1, false)} }, false},
		{"one of an older password hash", func(*account.Account) []Key { return []Key{key(oldAda, 1, true)} }, false},
		{"among others", func(ada *account.Account) []Key {
			return []Key{key(oldAda, 1, true), key(ada, 2, false), key(ada, 3, true)}
		}, true},
	} {
		f := newFixture(t)
		ada := f.acct(t, "ada")
		if keys := tc.keys(ada); keys != nil {
			f.put(t, "ada", keys...)
		}
		if got, err := f.s.Verifying(ada); got != tc.want || err != nil {
			t.Errorf("%s: %v %v, want %v", tc.name, got, err, tc.want)
		}
	}
	f := newFixture(t)
	f.spoil(t, "passkeys:ada")
	if got, err := f.s.Verifying(f.acct(t, "ada")); got || !errors.Is(err, records.ErrUnreadable) {
		t.Errorf("a record that does not open: %v %v", got, err)
	}
}

// TestCurrent leaves out the passkeys of an older password hash.
func TestCurrent(t *testing.T) {
	f := newFixture(t)
	ada := f.acct(t, "ada")
	old := loadAccounts(t, testhash.Bcrypt("lovelace-1815"), graceHash)
	oldAda, _ := old.Lookup("ada")
	f.put(t, "ada", key(oldAda, 1, true), key(ada, 2, false), key(oldAda, 3, false), key(ada, 4, true))
	got := f.s.Current(ada)
	if len(got) != 2 || got[0].ID[0] != 2 || got[1].ID[0] != 4 {
		t.Errorf("current: %+v", got)
	}
	if len(f.s.Current(oldAda)) != 2 {
		t.Error("the older account's passkeys")
	}
	if len(f.s.Current(f.acct(t, "grace"))) != 0 {
		t.Error("grace has ada's passkeys")
	}
}

// TestUserHandle: 16 bytes, one per account and password hash, telling
// nothing of the name.
func TestUserHandle(t *testing.T) {
	set := loadAccounts(t, adaHash, graceHash)
	changed := loadAccounts(t, testhash.Bcrypt("lovelace-1815"), graceHash)
	ada, _ := set.Lookup("ada")
	grace, _ := set.Lookup("grace")
	ada2, _ := changed.Lookup("ada")
	h := UserHandle(ada)
	if len(h) != 16 || bytes.Equal(h, UserHandle(grace)) || bytes.Equal(h, UserHandle(ada2)) || !bytes.Equal(h, UserHandle(ada)) ||
		bytes.Contains(h, []byte("ada")) || bytes.Equal(h, ada.ID[:]) {
		t.Errorf("handles %x %x %x", h, UserHandle(grace), UserHandle(ada2))
	}
	u := user{acct: ada}
	if !bytes.Equal(u.WebAuthnID(), h) || u.WebAuthnName() != "ada" || u.WebAuthnDisplayName() != "Ada Lovelace" {
		t.Errorf("user %q %q", u.WebAuthnName(), u.WebAuthnDisplayName())
	}
	if (user{acct: grace}).WebAuthnDisplayName() != "grace" {
		t.Error("a user without a display name is not shown by name")
	}
}

// TestCredentials: the library gets the account's current passkeys,
// with their flags, counter and transports.
func TestCredentials(t *testing.T) {
	set := loadAccounts(t, adaHash, graceHash)
	ada, _ := set.Lookup("ada")
	grace, _ := set.Lookup("grace")
	k := key(ada, 1, true)
	k.SignCount, k.BackupEligible, k.Transports, k.AAGUID = 7, true, []string{"internal", "hybrid"}, []byte{9}
	creds := credentials(ada, []Key{k, key(grace, 2, true)})
	if len(creds) != 1 {
		t.Fatalf("%d credentials, want ada's one", len(creds))
	}
	c := creds[0]
	if !bytes.Equal(c.ID, k.ID) || !c.Flags.UserPresent || !c.Flags.UserVerified || !c.Flags.BackupEligible || c.Flags.BackupState ||
		c.Authenticator.SignCount != 7 || !bytes.Equal(c.Authenticator.AAGUID, []byte{9}) || len(c.Transport) != 2 || c.Transport[1] != "hybrid" {
		t.Errorf("credential %+v", c)
	}
}

// TestOwner finds the user of a credential ID across the realm's
// records, skipping other records and those that do not open.
func TestOwner(t *testing.T) {
	f := newFixture(t)
	f.put(t, "ada", key(f.acct(t, "ada"), 1, true))
	f.put(t, "grace", key(f.acct(t, "grace"), 2, true), key(f.acct(t, "grace"), 3, false))
	f.spoil(t, "passkeys:mallory")
	f.spoil(t, "totp:ada")
	for id, want := range map[byte]string{1: "ada", 2: "grace", 3: "grace", 4: ""} {
		if got := f.s.Owner([]byte{id, id, id}); got != want {
			t.Errorf("owner of %d: %q, want %q", id, got, want)
		}
	}
	if got := f.s.Owner([]byte{1, 1}); got != "" {
		t.Errorf("a prefix of an ID: %q", got)
	}
}

// managed is a user source of one managed account.
type managed struct{ acct *account.Account }

func (m managed) Lookup(name string) (*account.Account, bool) { return m.acct, name == m.acct.Name }

// TestOwnerManaged: a managed account's passkeys are kept under its
// immutable ID: a later account of the name does not own them.
func TestOwnerManaged(t *testing.T) {
	f := newFixture(t)
	as := func(uid byte) *account.Account {
		acct, err := account.Managed("r", account.ManagedConfig{Name: "mia", UID: [16]byte{uid}})
		if err != nil {
			t.Fatal(err)
		}
		f.accounts.Manage(managed{acct})
		return acct
	}
	mia := as(1)
	f.put(t, "mia", key(mia, 5, true))
	if got := f.s.Owner([]byte{5, 5, 5}); got != "mia" || f.s.Records.Get(mia.RecordKey(Kind)) == nil || f.s.Records.Get("passkeys:mia") != nil {
		t.Errorf("a managed account's passkey: owner %q", got)
	}
	as(2)
	if keys, _, err := f.s.Of("mia"); err != nil || len(keys) != 0 || f.s.Owner([]byte{5, 5, 5}) != "" {
		t.Errorf("a later account of the name: %d passkeys, %v", len(keys), err)
	}
}

// TestRename renames one passkey, and nothing else.
func TestRename(t *testing.T) {
	f := newFixture(t)
	ada := f.acct(t, "ada")
	ctx := context.Background()
	f.put(t, "ada", key(ada, 1, true), key(ada, 2, true))
	renamed, err := f.s.Rename(ctx, "ada", []byte{2, 2, 2}, "work laptop")
	if err != nil || renamed.Name != "work laptop" || renamed.ID[0] != 2 {
		t.Fatalf("rename: %+v %v", renamed, err)
	}
	keys, _, _ := f.s.Of("ada")
	if keys[0].Name != "key b" || keys[1].Name != "work laptop" {
		t.Errorf("after the rename: %q %q", keys[0].Name, keys[1].Name)
	}
	if _, err := f.s.Rename(ctx, "ada", []byte{9}, "x"); !errors.Is(err, ErrNoKey) {
		t.Errorf("an unknown ID: %v", err)
	}
	if _, err := f.s.Rename(ctx, "grace", []byte{2, 2, 2}, "x"); !errors.Is(err, ErrNoKey) {
		t.Errorf("another user's passkey: %v", err)
	}
}

// TestRemove removes one passkey and revokes the sessions it started,
// in the store, and no other session.
func TestRemove(t *testing.T) {
	f := newFixture(t)
	ada := f.acct(t, "ada")
	ctx := context.Background()
	now := f.s.Clock.Now()
	started := []Session{{ID: [16]byte{1}, Expires: now.Add(time.Hour).Unix()}, {ID: [16]byte{2}, Expires: now.Add(2 * time.Hour).Unix()}}
	k1, k2 := key(ada, 1, true), key(ada, 2, true)
	k1.Sessions = started
	k2.Sessions = []Session{{ID: [16]byte{3}, Expires: now.Add(time.Hour).Unix()}}
	f.put(t, "ada", k1, k2)
	removed, err := f.s.Remove(ctx, "ada", k1.ID)
	if err != nil || !bytes.Equal(removed.ID, k1.ID) || len(removed.Sessions) != 2 {
		t.Fatalf("remove: %+v %v", removed, err)
	}
	realm := f.s.Records.Realm
	for _, s := range started {
		if !realm.RevokedID(s.ID, time.Unix(s.Expires, 0)) {
			t.Errorf("session %x of the removed passkey lives", s.ID)
		}
	}
	if realm.RevokedID([16]byte{3}, time.Unix(k2.Sessions[0].Expires, 0)) {
		t.Error("the other passkey's session was ended")
	}
	if keys, _, _ := f.s.Of("ada"); len(keys) != 1 || keys[0].ID[0] != 2 {
		t.Errorf("left: %+v", keys)
	}
	if _, err := f.s.Remove(ctx, "ada", k1.ID); !errors.Is(err, ErrNoKey) {
		t.Errorf("removed twice: %v", err)
	}
	if _, err := f.s.Remove(ctx, "ada", k2.ID); err != nil || f.s.Records.Get("passkeys:ada") != nil {
		t.Errorf("the last passkey: %v, record left %v", err, f.s.Records.Get("passkeys:ada") != nil)
	}
}

// TestFit: passkeys that remember too many sessions for their record
// forget the oldest, which are logged for the caller to end.
func TestFit(t *testing.T) {
	f := newFixture(t)
	ada := f.acct(t, "ada")
	keys := make([]Key, MaxKeys)
	for i := range keys {
		keys[i] = key(ada, byte(i), true)
		keys[i].PublicKey = bytes.Repeat([]byte{1}, 700)
		for n := range maxPasskeySessions {
			keys[i].Sessions = append(keys[i].Sessions, Session{ID: [16]byte{byte(i), byte(n)}, Expires: int64(2_000_000_000 + n)})
		}
	}
	forgot, err := f.s.fit("ada", keys)
	if err != nil || len(forgot) == 0 || jsonSize(keys) > records.MaxData {
		t.Fatalf("forgot %d, %d bytes: %v", len(forgot), jsonSize(keys), err)
	}
	warned := f.logs.FilterMessageSnippet("remember too many sessions").All()
	if len(warned) != 1 || warned[0].ContextMap()["user"] != "ada" || warned[0].ContextMap()["ended"] != int64(len(forgot)) {
		t.Errorf("logged %v", f.logs.All())
	}
	if forgot, err := f.s.fit("ada", keys[:1]); len(forgot) != 0 || err != nil || f.logs.Len() != 1 {
		t.Errorf("passkeys that fit: %v %v, logged %d", forgot, err, f.logs.Len())
	}
}

// TestViewOf: the ID as base64url, the times in UTC, no last use
// before the first.
func TestViewOf(t *testing.T) {
	k := Key{ID: []byte{0xfb, 0xff, 0x01}, Name: "<b>laptop</b>", Created: 1_700_000_000}
	v := ViewOf(k)
	if v.ID != "-_8B" || v.Name != k.Name || !v.Created.Equal(time.Unix(k.Created, 0)) || v.Created.Location() != time.UTC || v.LastUsed != nil {
		t.Errorf("view %+v", v)
	}
	k.LastUsed = 1_700_000_100
	if v := ViewOf(k); v.LastUsed == nil || v.LastUsed.Unix() != k.LastUsed || v.LastUsed.Location() != time.UTC {
		t.Errorf("last used %v", v.LastUsed)
	}
}

func TestParseID(t *testing.T) {
	long := base64.RawURLEncoding.EncodeToString(make([]byte, maxIDLen+1))
	for _, tc := range []struct {
		in   string
		want []byte
	}{
		{"-_8B", []byte{0xfb, 0xff, 0x01}},
		{"AQID", []byte{1, 2, 3}},
		{base64.RawURLEncoding.EncodeToString(make([]byte, maxIDLen)), make([]byte, maxIDLen)},
		{"", nil},
		{"+/8B", nil}, // standard base64
		{"AQI=", nil}, // padded
		{"A", nil},    // no whole byte
		{"a b", nil},  // not base64
		{long, nil},   // longer than WebAuthn allows
		{"<b>", nil},  // not base64
	} {
		if got := ParseID(tc.in); !bytes.Equal(got, tc.want) || (got == nil) != (tc.want == nil) {
			t.Errorf("ParseID(%.20q) = %x, want %x", tc.in, got, tc.want)
		}
	}
	if strings.Contains(long, "=") {
		t.Fatal("padding in a raw encoding")
	}
}
