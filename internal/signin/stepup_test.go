package signin

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/gate"
	"github.com/caddy-miniapp/miniapp/internal/session"
	"github.com/caddy-miniapp/miniapp/internal/web"
	"github.com/caddy-miniapp/miniapp/store"
)

// signedIn is a session of ada started now with the factors.
func (w *world) signedIn(t *testing.T, factors uint8) *gate.Session {
	t.Helper()
	return w.s.Gate.Start(context.Background(), http.Header{}, w.wire, w.acct(t, "ada"), gate.Client{IP: "192.0.2.1"}, factors, session.MethodPassword)
}

// TestStepUpOf: what a change of the sign-in methods needs, for each
// kind of account and session.
func TestStepUpOf(t *testing.T) {
	for _, tc := range []struct {
		name    string
		setup   func(t *testing.T, w *world)
		factors uint8
		age     time.Duration
		want    StepUp
	}{
		{"no factor, recent", func(*testing.T, *world) {}, 1, 0, StepUpNone},
		{"no factor, seconds before the limit", func(*testing.T, *world) {}, 1, RecentSignIn - 3*time.Second, StepUpNone},
		{"no factor, older", func(*testing.T, *world) {}, 1, RecentSignIn + time.Second, StepUpPassword},
		{"codes, two factors, recent", func(t *testing.T, w *world) { w.enrol(t, "ada") }, 2, 0, StepUpNone},
		{"codes, one factor, recent", func(t *testing.T, w *world) { w.enrol(t, "ada") }, 1, 0, StepUpCode},
		{"codes, two factors, older", func(t *testing.T, w *world) { w.enrol(t, "ada") }, 2, RecentSignIn + time.Second, StepUpCode},
		{"codes and a passkey, older", func(t *testing.T, w *world) { w.enrol(t, "ada"); w.putKey(t, "ada", true) }, 2, time.Hour, StepUpCode},
		{"a passkey, two factors, recent", func(t *testing.T, w *world) { w.putKey(t, "ada", true) }, 2, 0, StepUpNone},
		{"a passkey, one factor, recent", func(t *testing.T, w *world) { w.putKey(t, "ada", true) }, 1, 0, StepUpPasskey},
		{"a passkey, two factors, older", func(t *testing.T, w *world) { w.putKey(t, "ada", true) }, 2, time.Hour, StepUpPasskey},
		{"a passkey that does not verify, older", func(t *testing.T, w *world) { w.putKey(t, "ada", false) }, 1, time.Hour, StepUpPassword},
		{"an unreadable passkeys record, older", func(t *testing.T, w *world) { spoil(t, w, "passkeys:ada") }, 2, time.Hour, StepUpPasskey},
		{"an unreadable passkeys record, recent", func(t *testing.T, w *world) { spoil(t, w, "passkeys:ada") }, 2, 0, StepUpNone},
		{"an unreadable code record, one factor", func(t *testing.T, w *world) { spoil(t, w, "totp:ada") }, 1, 0, StepUpCode},
		{"a passkey with passkeys off, older", func(t *testing.T, w *world) { w.putKey(t, "ada", true); w.s.Passkeys = nil }, 2, time.Hour,
			StepUpPassword},
	} {
		w := newWorld(t)
		tc.setup(t, w)
		sess := w.signedIn(t, tc.factors)
		w.clk.Advance(tc.age)
		if got := w.s.StepUpOf(sess); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
	}
}

// status is the refusal's status, 0 for none.
func status(err error) int {
	if r, ok := errors.AsType[*Refusal](err); ok {
		return r.Status
	}
	return 0
}

// TestAllowChangePassword: an account without a second factor, signed
// in long ago, proves the change with its password, under the login
// throttle.
func TestAllowChangePassword(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	sess := w.signedIn(t, 1)
	c := w.client("192.0.2.1")
	if err := w.s.AllowChange(ctx, sess, true, Proof{}, c); err != nil {
		t.Fatalf("a recent sign-in: %v", err)
	}
	w.clk.Advance(RecentSignIn + time.Second)
	for _, proof := range []Proof{{}, {Password: wrongPassword}, {Password: gracePassword}, {Password: strings.Repeat("x", web.MaxFieldLen+1)},
		{Code: "123456"}} {
		if err := w.s.AllowChange(ctx, sess, false, proof, c); status(err) != http.StatusForbidden {
			t.Errorf("%.20q: %v", proof, err)
		}
	}
	if err := w.s.AllowChange(ctx, sess, false, Proof{Password: adaPassword}, c); err != nil {
		t.Errorf("the right password: %v", err)
	}
	// the wrong passwords counted: three more and the client is throttled
	for range loginLimit - 2 {
		_ = w.s.AllowChange(ctx, sess, false, Proof{Password: wrongPassword}, c)
	}
	if err := w.s.AllowChange(ctx, sess, false, Proof{Password: adaPassword}, c); status(err) != http.StatusTooManyRequests {
		t.Errorf("past the login limit: %v", err)
	}
	noSecrets(t, w.logs, wrongPassword, adaPassword)
}

// TestAllowChangeCode: an account with one-time codes proves the change
// with a current code or a recovery code, never with its password
// alone; a refused code is the code's own refusal, as 403.
func TestAllowChangeCode(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	codes := w.enrol(t, "ada")
	sess := w.signedIn(t, 1)
	c := w.client("192.0.2.1")
	for _, proof := range []Proof{{}, {Password: adaPassword}} {
		err := w.s.AllowChange(ctx, sess, true, proof, c)
		if status(err) != http.StatusForbidden || !strings.Contains(err.Error(), "code") {
			t.Errorf("%+v: %v", proof, err)
		}
	}
	if err := w.s.AllowChange(ctx, sess, true, Proof{Code: "000000"}, c); status(err) != http.StatusForbidden || w.count.of("factor failure wrong_code") != 1 {
		t.Errorf("a wrong code: %v, counted %v", err, w.count.counts)
	}
	code := w.code(t)
	if err := w.s.AllowChange(ctx, sess, false, Proof{Code: code, Password: wrongPassword}, c); err != nil {
		t.Errorf("a right code: %v", err)
	}
	if err := w.s.AllowChange(ctx, sess, false, Proof{Code: code}, c); status(err) != http.StatusForbidden {
		t.Errorf("the same code again: %v", err)
	}
	if err := w.s.AllowChange(ctx, sess, false, Proof{Code: codes[4]}, c); err != nil {
		t.Errorf("a recovery code: %v", err)
	}
	// a session of two factors, signed in long ago, needs a code too
	w.clk.Advance(time.Hour)
	two := w.signedIn(t, 2)
	w.clk.Advance(RecentSignIn + time.Second)
	if err := w.s.AllowChange(ctx, two, true, Proof{Password: adaPassword}, c); status(err) != http.StatusForbidden {
		t.Errorf("an older session of two factors with a password: %v", err)
	}
	noSecrets(t, w.logs, code, codes[4], adaPassword)
}

// TestAllowChangeCodeThrottled: a code past the client's limit is a 429.
func TestAllowChangeCodeThrottled(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	w.enrol(t, "ada")
	sess := w.signedIn(t, 1)
	c := w.client("192.0.2.1")
	for range loginLimit {
		_ = w.s.AllowChange(ctx, sess, true, Proof{Code: "000000"}, c)
	}
	if err := w.s.AllowChange(ctx, sess, true, Proof{Code: w.code(t)}, c); status(err) != http.StatusTooManyRequests {
		t.Errorf("a right code past the limit: %v", err)
	}
}

// TestAllowChangePasskey: an account whose only factor is a passkey
// needs a passkey sign-in within RecentSignIn; nothing else proves it.
func TestAllowChangePasskey(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	w.putKey(t, "ada", true)
	c := w.client("192.0.2.1")
	one := w.signedIn(t, 1)
	for _, proof := range []Proof{{}, {Password: adaPassword}, {Code: "123456"}} {
		err := w.s.AllowChange(ctx, one, true, proof, c)
		if status(err) != http.StatusForbidden || !strings.Contains(err.Error(), "passkey") {
			t.Errorf("%+v: %v", proof, err)
		}
	}
	two := w.signedIn(t, 2)
	if err := w.s.AllowChange(ctx, two, false, Proof{}, c); err != nil {
		t.Errorf("a recent passkey sign-in: %v", err)
	}
}

// TestAllowChangeEnrolOnly: a session that may only enrol a second
// factor may add one, and change nothing else whatever it proves.
func TestAllowChangeEnrolOnly(t *testing.T) {
	w := newWorld(t)
	w.s.Required = true
	ctx := context.Background()
	sess := w.signedIn(t, 1)
	c := w.client("192.0.2.1")
	if err := w.s.AllowChange(ctx, sess, true, Proof{}, c); err != nil {
		t.Errorf("adding a factor: %v", err)
	}
	for _, proof := range []Proof{{}, {Password: adaPassword}} {
		if err := w.s.AllowChange(ctx, sess, false, proof, c); err != ErrEnrolOnly {
			t.Errorf("a change other than adding, %+v: %v", proof, err)
		}
	}
	if status(ErrEnrolOnly) != http.StatusForbidden {
		t.Errorf("ErrEnrolOnly: %v", ErrEnrolOnly)
	}
	if err := w.s.AllowChange(ctx, w.signedIn(t, 2), false, Proof{}, c); err != nil {
		t.Errorf("a session of two factors: %v", err)
	}
}

// TestAppendField: the field each step-up asks for, its id escaped.
func TestAppendField(t *testing.T) {
	for _, tc := range []struct {
		kind  StepUp
		want  []string
		never []string
	}{
		{StepUpNone, nil, []string{"<"}},
		{StepUpPassword, []string{`name="password"`, `type="password"`, `autocomplete="current-password"`, `id="x&#34;&gt;&lt;y"`, `for="x&#34;&gt;&lt;y"`},
			[]string{"current_code", `"><y`}},
		{StepUpCode, []string{`name="current_code"`, `autocomplete="one-time-code"`, `maxlength="32"`, `id="x&#34;&gt;&lt;y"`},
			[]string{`name="password"`, `"><y`}},
		{StepUpPasskey, []string{"passkey"}, []string{"<input"}},
	} {
		got := string(tc.kind.AppendField([]byte("pre"), `x"><y`))
		if !strings.HasPrefix(got, "pre") || (tc.kind == StepUpNone) != (got == "pre") {
			t.Errorf("%d: %s", tc.kind, got)
		}
		for _, w := range tc.want {
			if !strings.Contains(got, w) {
				t.Errorf("%d lacks %q: %s", tc.kind, w, got)
			}
		}
		for _, n := range tc.never {
			if strings.Contains(got[3:], n) {
				t.Errorf("%d holds %q: %s", tc.kind, n, got)
			}
		}
	}
}

// TestRestart: a new factor is a new sign-in: the session ends (with
// everywhere, every session of the account) and one of two factors
// starts for this browser, keeping its known device.
func TestRestart(t *testing.T) {
	for _, everywhere := range []bool{false, true} {
		w := newWorld(t)
		ctx := context.Background()
		h := http.Header{}
		out := w.s.Password(ctx, h, Login{Name: "ada", Password: adaPassword, Client: w.client("192.0.2.1")})
		if out.Session == nil {
			t.Fatal(out.Err)
		}
		other := w.signedIn(t, 1)
		c := w.client("192.0.2.1")
		c.Wire = w.back(t, h)
		device := w.s.Gate.KnownDevice(ctx, c.Wire, "ada")
		h = http.Header{}
		w.s.Restart(ctx, h, out.Session, c, everywhere)
		shared := w.s.Gate.Shared
		acct := store.AccountID(w.acct(t, "ada").ID)
		if !shared.Revoked(acct, out.Session.ID, out.Session.Expires, out.Session.Counter, out.Session.Generation) {
			t.Errorf("everywhere %v: the old session lives", everywhere)
		}
		if got := shared.Revoked(acct, other.ID, other.Expires, other.Counter, other.Generation); got != everywhere {
			t.Errorf("everywhere %v: another session revoked %v", everywhere, got)
		}
		fresh, why := w.s.Gate.Open(w.back(t, h), false)
		if fresh == nil || fresh.Factors != 2 || fresh.ID == out.Session.ID {
			t.Fatalf("everywhere %v: the new session %+v %q", everywhere, fresh, why)
		}
		if !everywhere {
			again := w.s.Gate.KnownDevice(ctx, w.back(t, h), "ada")
			if again == nil || again.ID != device.ID {
				t.Errorf("the browser's device changed: %+v", again)
			}
		}
	}
}
