package totp

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/account"
	"github.com/caddy-miniapp/miniapp/internal/records"
	"github.com/caddy-miniapp/miniapp/internal/session"
	"github.com/caddy-miniapp/miniapp/store"
	"github.com/caddy-miniapp/miniapp/store/storage"
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// testSecret is a secret of 160 bits, as NewKey makes them.
const testSecret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"

// newService is the realm's second factors as the root wires them,
// over a realm kept in dir, with the keys given (a fresh one when
// none), and the logs it writes. every tells two nodes on one folder
// apart (the process shares a realm of one place and options).
func newService(t *testing.T, dir string, every time.Duration, clk *session.Clock, secrets ...[]byte) (*Service, *observer.ObservedLogs) {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	realm, err := store.Join(ctx, storage.New(&certmagic.FileStorage{Path: dir}), store.Options{Realm: "r", Every: every,
		Remember: time.Hour, Now: clk.Now, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = realm.Release() })
	if len(secrets) == 0 {
		secrets = [][]byte{session.Random(32)}
	}
	keys, err := session.NewKeyring(secrets, "r")
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.DebugLevel)
	logger := zap.New(core)
	return &Service{Records: &records.Store{Realm: realm, Keys: keys, Logger: logger, Accounts: accounts{}}, Clock: clk, Logger: logger}, logs
}

// enrolled is a service where ada has a factor of testSecret, with its
// recovery codes.
func enrolled(t *testing.T) (*Service, []string, *observer.ObservedLogs) {
	t.Helper()
	s, logs := newService(t, t.TempDir(), time.Hour, new(session.Clock))
	codes, replaced, err := s.Enrol(context.Background(), "ada", testSecret, codeAt(t, testSecret, s.Clock.Now()))
	if err != nil || replaced || len(codes) != RecoveryCodes {
		t.Fatalf("enrol: %d codes, replaced %v, %v", len(codes), replaced, err)
	}
	return s, codes, logs
}

// accounts finds accounts by name in a map.
type accounts map[string]*account.Account

func (a accounts) Lookup(name string) (*account.Account, bool) {
	acct, ok := a[name]
	return acct, ok
}

// TestManagedAccount: a managed account's factor and trusted browsers
// hang on its immutable ID: a new password keeps them; a later account
// of the name, or a user of the Caddyfile given it, does not see them.
func TestManagedAccount(t *testing.T) {
	ctx := context.Background()
	s, _ := newService(t, t.TempDir(), time.Hour, new(session.Clock))
	mia := account.ManagedConfig{Name: "mia", UID: [16]byte{1}}
	as := func(m account.ManagedConfig) {
		acct, err := account.Managed("r", m)
		if err != nil {
			t.Fatal(err)
		}
		s.Records.Accounts = accounts{"mia": acct}
	}
	as(mia)
	if _, _, err := s.Enrol(ctx, "mia", testSecret, codeAt(t, testSecret, s.Clock.Now())); err != nil {
		t.Fatal(err)
	}
	if err := s.Trust(ctx, "mia", Trust{ID: "01000000000000000000000000000000", Expires: s.Clock.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if s.Records.Get("totp:mia") != nil || s.Records.Get("trust:mia") != nil {
		t.Error("a managed account's records are kept under its name")
	}
	mia.Generation++
	as(mia)
	if !s.Has("mia") || !s.Trusted("mia", [16]byte{1}) {
		t.Error("a new password lost the factor or the trusted browser")
	}
	as(account.ManagedConfig{Name: "mia", UID: [16]byte{2}})
	if s.Has("mia") || s.StatusOf("mia").TOTP || s.Trusted("mia", [16]byte{1}) {
		t.Error("a later account of the name has the earlier one's factor or trust")
	}
	s.Records.Accounts = accounts{"mia": {Name: "mia"}}
	if s.Has("mia") || s.Trusted("mia", [16]byte{1}) {
		t.Error("a user of the Caddyfile given the name has the managed account's factor or trust")
	}
	// wrong codes are counted per account
	as(mia)
	wrong := "000000"
	if _, ok := MatchStep(testSecret, wrong, s.Clock.Now()); ok {
		wrong = "111111"
	}
	for range MaxFailures + 1 {
		_, _ = s.Use(ctx, "mia", wrong)
	}
	if _, err := s.Use(ctx, "mia", wrong); !errors.As(err, new(Throttled)) {
		t.Fatalf("the managed mia's wrong codes: %v", err)
	}
	s.Records.Accounts = accounts{"mia": {Name: "mia"}}
	if _, err := s.Use(ctx, "mia", "000000"); !errors.Is(err, ErrNoFactor) {
		t.Errorf("the Caddyfile's mia after the managed mia's wrong codes: %v", err)
	}
}

func TestUseOnce(t *testing.T) {
	s, _, _ := enrolled(t)
	ctx := context.Background()
	// the code that confirmed the setup is used already
	if _, err := s.Use(ctx, "ada", codeAt(t, testSecret, s.Clock.Now())); !errors.Is(err, ErrReplayed) {
		t.Fatalf("the setup's code again: %v", err)
	}
	s.Clock.Advance(30 * time.Second)
	at := s.Clock.Now()
	code := codeAt(t, testSecret, at)
	if kind, err := s.Use(ctx, "ada", code); err != nil || kind != ByCode {
		t.Fatalf("the next step's code: %q %v", kind, err)
	}
	if _, err := s.Use(ctx, "ada", code); !errors.Is(err, ErrReplayed) {
		t.Errorf("a code used twice: %v", err)
	}
	f, _, err := s.Of("ada")
	if err != nil || f == nil || f.LastStep != at.Unix()/totpPeriod {
		t.Errorf("the stored factor after its use: %+v %v", f, err)
	}
	if _, err := s.Use(ctx, "ada", "000000"); !errors.Is(err, ErrWrongCode) && !errors.Is(err, ErrReplayed) {
		t.Errorf("a wrong code: %v", err)
	}
}

// TestUseRecovery: a recovery code works once, as typed, and is logged
// with the user and never the code.
func TestUseRecovery(t *testing.T) {
	s, codes, logs := enrolled(t)
	ctx := context.Background()
	typed := strings.ToUpper(strings.ReplaceAll(codes[2], "-", ""))
	if kind, err := s.Use(ctx, "ada", typed); err != nil || kind != ByRecovery {
		t.Fatalf("a recovery code: %q %v", kind, err)
	}
	if _, err := s.Use(ctx, "ada", codes[2]); !errors.Is(err, ErrWrongCode) {
		t.Errorf("a recovery code used twice: %v", err)
	}
	if st := s.StatusOf("ada"); st != (Status{TOTP: true, RecoveryCodesLeft: RecoveryCodes - 1}) {
		t.Errorf("status %+v", st)
	}
	used := logs.FilterMessage("recovery code used").All()
	if len(used) != 1 || used[0].ContextMap()["user"] != "ada" {
		t.Errorf("logged %v", logs.All())
	}
	for _, e := range logs.All() {
		line, _ := json.Marshal(e.ContextMap())
		for _, c := range codes {
			if strings.Contains(e.Message+string(line), c) || strings.Contains(strings.ToUpper(e.Message+string(line)), typed) {
				t.Errorf("a recovery code in the log: %s %s", e.Message, line)
			}
		}
	}
}

// TestUseThrottled: after MaxFailures wrong codes in the window even a
// right code is refused with how long to wait; a right code takes its
// attempt back; the window ends.
func TestUseThrottled(t *testing.T) {
	s, codes, _ := enrolled(t)
	ctx := context.Background()
	for i := range MaxFailures - 1 {
		if _, err := s.Use(ctx, "ada", "wrong"); !errors.Is(err, ErrWrongCode) {
			t.Fatalf("wrong code %d: %v", i+1, err)
		}
	}
	// a right code within the limit, not counted
	if _, err := s.Use(ctx, "ada", codes[0]); err != nil {
		t.Fatalf("a right code after %d wrong ones: %v", MaxFailures-1, err)
	}
	if _, err := s.Use(ctx, "ada", "wrong"); !errors.Is(err, ErrWrongCode) {
		t.Fatalf("the last wrong code within the limit: %v", err)
	}
	_, err := s.Use(ctx, "ada", codes[1])
	var throttled Throttled
	if !errors.As(err, &throttled) || throttled.Wait <= 0 || throttled.Wait > Window {
		t.Fatalf("a right code past the limit: %v", err)
	}
	if WrongCode(err) {
		t.Error("a throttled check counts as a wrong code")
	}
	// another account is not throttled
	if _, err := s.Use(ctx, "grace", "wrong"); !errors.Is(err, ErrNoFactor) {
		t.Errorf("another user: %v", err)
	}
	s.Clock.Advance(Window)
	if kind, err := s.Use(ctx, "ada", codes[1]); err != nil || kind != ByRecovery {
		t.Errorf("after the window: %q %v", kind, err)
	}
}

// TestUseWithoutFactor: a user without a factor, or whose record does
// not open, is refused as such, not as a wrong code, and not counted.
func TestUseWithoutFactor(t *testing.T) {
	s, _ := newService(t, t.TempDir(), time.Hour, new(session.Clock))
	ctx := context.Background()
	for range MaxFailures + 1 {
		if _, err := s.Use(ctx, "ada", "123456"); !errors.Is(err, ErrNoFactor) || WrongCode(err) {
			t.Fatalf("no factor: %v", err)
		}
	}
	if err := s.Records.Swap(ctx, "totp:ada", func([]byte) ([]byte, error) { return []byte("edited in the store"), nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Use(ctx, "ada", "123456"); !errors.Is(err, ErrUnreadable) {
		t.Errorf("an unreadable record: %v", err)
	}
	if st := s.StatusOf("ada"); st != (Status{TOTP: true}) {
		t.Errorf("the status of an unreadable record: %+v", st)
	}
	if !s.Has("ada") {
		t.Error("an unreadable record does not count as a factor")
	}
}

func TestWrongCode(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{ErrWrongCode, true},
		{ErrReplayed, true},
		{errors.Join(errors.New("x"), ErrReplayed), true},
		{ErrNoFactor, false},
		{ErrUnreadable, false},
		{Throttled{Wait: time.Second}, false},
		{records.StoreFailed{Err: errors.New("down")}, false},
		{nil, false},
	} {
		if got := WrongCode(tc.err); got != tc.want {
			t.Errorf("WrongCode(%v) = %v", tc.err, got)
		}
	}
}

// TestOf: none, a factor, and records that do not open or hold no
// secret.
func TestOf(t *testing.T) {
	s, _ := newService(t, t.TempDir(), time.Hour, new(session.Clock))
	ctx := context.Background()
	if f, sealed, err := s.Of("ada"); f != nil || sealed != nil || err != nil {
		t.Errorf("no factor: %+v %q %v", f, sealed, err)
	}
	if err := s.Records.Swap(ctx, "totp:ada", func([]byte) ([]byte, error) { return s.Records.Seal("totp:ada", Factor{}), nil }); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Of("ada"); !errors.Is(err, ErrUnreadable) {
		t.Errorf("a factor without a secret: %v", err)
	}
	// sealed under another user's name
	if err := s.Records.Swap(ctx, "totp:ada", func([]byte) ([]byte, error) {
		return s.Records.Seal("totp:grace", Factor{Secret: testSecret}), nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, sealed, err := s.Of("ada"); !errors.Is(err, ErrUnreadable) || sealed == nil {
		t.Errorf("another user's record: %v", err)
	}
}

// TestEnrol: a wrong first code stores nothing; a right one stores the
// factor, and a second enrolment replaces it (the old secret's codes
// and recovery codes no longer work).
func TestEnrol(t *testing.T) {
	s, _ := newService(t, t.TempDir(), time.Hour, new(session.Clock))
	ctx := context.Background()
	if codes, _, err := s.Enrol(ctx, "ada", testSecret, "000000"); !errors.Is(err, ErrWrongCode) || codes != nil {
		// a real code of 000000 is one in a million
		t.Fatalf("a wrong first code: %v %v", codes, err)
	}
	if s.Has("ada") || s.Records.Get("totp:ada") != nil {
		t.Fatal("a wrong first code stored a factor")
	}
	if _, _, err := s.Enrol(ctx, "ada", testSecret, codeAt(t, testSecret, s.Clock.Now().Add(-90*time.Second))); !errors.Is(err, ErrWrongCode) {
		t.Errorf("a code three steps old: %v", err)
	}
	first, replaced, err := s.Enrol(ctx, "ada", testSecret, codeAt(t, testSecret, s.Clock.Now()))
	if err != nil || replaced {
		t.Fatalf("enrol: %v %v", replaced, err)
	}
	f, _, _ := s.Of("ada")
	if f == nil || f.Secret != testSecret || !near(f.Created, s.Clock.Now().Unix()) || len(f.Recovery) != RecoveryCodes {
		t.Errorf("stored %+v", f)
	}
	const other = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
	second, replaced, err := s.Enrol(ctx, "ada", other, codeAt(t, other, s.Clock.Now()))
	if err != nil || !replaced || len(second) != RecoveryCodes {
		t.Fatalf("a second enrolment: %v %v", replaced, err)
	}
	s.Clock.Advance(30 * time.Second)
	if _, err := s.Use(ctx, "ada", codeAt(t, testSecret, s.Clock.Now())); !errors.Is(err, ErrWrongCode) {
		t.Errorf("the replaced secret's code: %v", err)
	}
	if _, err := s.Use(ctx, "ada", first[0]); !errors.Is(err, ErrWrongCode) {
		t.Errorf("the replaced factor's recovery code: %v", err)
	}
	if _, err := s.Use(ctx, "ada", codeAt(t, other, s.Clock.Now())); err != nil {
		t.Errorf("the new secret's code: %v", err)
	}
}

// TestRemove removes the factor, and removing none is no error.
func TestRemove(t *testing.T) {
	s, codes, _ := enrolled(t)
	ctx := context.Background()
	if err := s.Remove(ctx, "ada"); err != nil {
		t.Fatal(err)
	}
	if s.Has("ada") || s.StatusOf("ada") != (Status{}) {
		t.Error("the factor is still there")
	}
	if _, err := s.Use(ctx, "ada", codes[0]); !errors.Is(err, ErrNoFactor) {
		t.Errorf("a recovery code of a removed factor: %v", err)
	}
	if err := s.Remove(ctx, "ada"); err != nil {
		t.Errorf("removing no factor: %v", err)
	}
}

// TestNewRecoveryCodes: a new set replaces the old one whole, and keeps
// the secret and its last used step.
func TestNewRecoveryCodes(t *testing.T) {
	s, old, _ := enrolled(t)
	ctx := context.Background()
	if _, err := s.Use(ctx, "ada", old[0]); err != nil {
		t.Fatal(err)
	}
	before, _, _ := s.Of("ada")
	codes, err := s.NewRecoveryCodes(ctx, "ada")
	if err != nil || len(codes) != RecoveryCodes {
		t.Fatalf("%d codes, %v", len(codes), err)
	}
	after, _, _ := s.Of("ada")
	if after.Secret != before.Secret || after.LastStep != before.LastStep || after.Created != before.Created || after.Salt == before.Salt {
		t.Errorf("factor %+v after %+v", after, before)
	}
	if st := s.StatusOf("ada"); st.RecoveryCodesLeft != RecoveryCodes {
		t.Errorf("status %+v", st)
	}
	if _, err := s.Use(ctx, "ada", old[1]); !errors.Is(err, ErrWrongCode) {
		t.Errorf("an old recovery code: %v", err)
	}
	if _, err := s.Use(ctx, "ada", codes[9]); err != nil {
		t.Errorf("a new recovery code: %v", err)
	}
	if _, err := s.NewRecoveryCodes(ctx, "grace"); !errors.Is(err, ErrNoFactor) {
		t.Errorf("a user without a factor: %v", err)
	}
	if s.Has("grace") {
		t.Error("new codes for a user without a factor stored one")
	}
}

// TestSwapError: a change's error is Swap's, and nothing is stored.
func TestSwapError(t *testing.T) {
	s, _, _ := enrolled(t)
	before := s.Records.Get("totp:ada")
	stop := errors.New("stop")
	if err := s.Swap(context.Background(), "ada", func(*Factor) (*Factor, error) { return &Factor{Secret: "X"}, stop }); err != stop {
		t.Errorf("Swap: %v", err)
	}
	if string(s.Records.Get("totp:ada")) != string(before) {
		t.Error("a failed change was stored")
	}
}

// TestHasNow: a factor counts once stored, on every node at once, even
// one that has not read the store's changes yet (a password alone must
// not pass there); a removed one no longer does.
func TestHasNow(t *testing.T) {
	dir, clk, key := t.TempDir(), new(session.Clock), session.Random(32)
	a, _ := newService(t, dir, time.Hour, clk, key)
	b, _ := newService(t, dir, 2*time.Hour, clk, key)
	ctx := context.Background()
	if has, err := a.HasNow(ctx, "ada"); has || err != nil {
		t.Fatalf("before any factor: %v %v", has, err)
	}
	if _, _, err := b.Enrol(ctx, "ada", testSecret, codeAt(t, testSecret, clk.Now())); err != nil {
		t.Fatal(err)
	}
	if has, err := b.HasNow(ctx, "ada"); !has || err != nil {
		t.Errorf("on the node that enrolled: %v %v", has, err)
	}
	if has, err := a.HasNow(ctx, "ada"); !has || err != nil {
		t.Errorf("on another node, before its sync: %v %v", has, err)
	}
	if err := a.Records.Realm.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if has, err := a.HasNow(ctx, "ada"); !has || err != nil {
		t.Errorf("on another node after its sync: %v %v", has, err)
	}
	if err := a.Remove(ctx, "ada"); err != nil {
		t.Fatal(err)
	}
	if has, err := a.HasNow(ctx, "ada"); has || err != nil {
		t.Errorf("after its removal: %v %v", has, err)
	}
}

func TestAppendStatus(t *testing.T) {
	for _, st := range []Status{{}, {TOTP: true}, {TOTP: true, RecoveryCodesLeft: 7}} {
		want, _ := json.Marshal(st)
		if got := AppendStatus([]byte("x"), st); string(got) != "x"+string(want) {
			t.Errorf("%+v: %s, want %s", st, got, want)
		}
	}
	for st, want := range map[Status]string{{}: "Off", {TOTP: true}: "On · recovery codes left: 0", {TOTP: true, RecoveryCodesLeft: 3}: "On · recovery codes left: 3"} {
		if got := string(AppendStatusLine(nil, st)); got != want {
			t.Errorf("%+v: %q, want %q", st, got, want)
		}
	}
}

// near reports whether two Unix times are within a second of each
// other: the clock may pass a second between a call and its check.
func near(a, b int64) bool { return a-b <= 1 && b-a <= 1 }
