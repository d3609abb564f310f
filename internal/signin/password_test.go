package signin

import (
	"context"
	"encoding/hex"
	"net/http"
	"testing"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/gate"
	"github.com/caddy-miniapp/miniapp/internal/session"
	"github.com/caddy-miniapp/miniapp/internal/totp"
	"github.com/caddy-miniapp/miniapp/internal/users"
)

// withUsers gives the world managed accounts, after its configured ada
// and grace.
func withUsers(w *world) *users.Service {
	u := &users.Service{Realm: "r", Records: w.s.TOTP.Records, Config: w.s.Accounts, Hash: users.Argon2id, Clock: w.clk}
	w.s.Accounts.Manage(u)
	w.s.Users = u
	return u
}

// rules are the tests' password rules.
var rules = users.Rules{Min: 15, Hasher: users.Argon2id, Realm: "r", Host: "app.example.test"}

// TestInvite: an invite's token sets the password and signs in, once; a
// password the rules refuse leaves the token usable; a token that does
// not open counts as a failed login; a reset link of an account with a
// second factor goes on to its code step.
func TestInvite(t *testing.T) {
	w := newWorld(t)
	u := withUsers(w)
	ctx := context.Background()
	token, err := u.Create(ctx, "lin", users.Profile{}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if out := w.s.Invite(ctx, http.Header{}, token, "short", rules, w.client("192.0.2.70")); refusal(out) == nil || refusal(out).Status != 400 {
		t.Fatalf("a short password: %+v", out)
	}
	h := http.Header{}
	out := w.s.Invite(ctx, h, token, "a long and fine password", rules, w.client("192.0.2.70"))
	if out.Session == nil || out.Session.User != "lin" || !out.Session.Account.Managed {
		t.Fatalf("the invite: %+v", out)
	}
	if s, _ := w.s.Gate.Open(w.back(t, h), false); s == nil {
		t.Error("the invite's session does not open")
	}
	before := w.count.of("login failure")
	if out := w.s.Invite(ctx, http.Header{}, token, "another fine password", rules, w.client("192.0.2.71")); refusal(out) == nil ||
		refusal(out).Status != 400 {
		t.Errorf("the token used again: %+v", out)
	}
	for range loginLimit {
		w.s.Invite(ctx, http.Header{}, "forged-token", "another fine password", rules, w.client("192.0.2.72"))
	}
	if out := w.s.Invite(ctx, http.Header{}, token, "another fine password", rules, w.client("192.0.2.72")); refusal(out) == nil ||
		refusal(out).Status != http.StatusTooManyRequests {
		t.Errorf("a client past its failures: %+v (failures before %d)", out, before)
	}

	w.enrol(t, "lin")
	reset, err := u.Reset(ctx, "lin", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if out := w.s.Invite(ctx, http.Header{}, reset, "a new long password", rules, w.client("192.0.2.73")); !out.CodeNeeded || out.Session != nil {
		t.Errorf("a reset of an account with a second factor: %+v", out)
	}
}

// TestChangePassword: a managed account's own password: a wrong current
// one is 403 and counts, a refused new one 400; a change ends the other
// sessions and starts this browser's anew; the Caddyfile's ada gets 409.
func TestChangePassword(t *testing.T) {
	w := newWorld(t)
	u := withUsers(w)
	ctx := context.Background()
	token, _ := u.Create(ctx, "lin", users.Profile{}, time.Hour)
	here, there := http.Header{}, http.Header{}
	w.s.Invite(ctx, here, token, "a long and fine password", rules, w.client("192.0.2.80"))
	if out := w.s.Password(ctx, there, Login{Name: "lin", Password: "a long and fine password", Client: w.client("192.0.2.81")}); out.Session == nil {
		t.Fatalf("lin's password login: %+v", out)
	}
	sess, _ := w.s.Gate.Open(w.back(t, here), false)
	for current, want := range map[string]int{"not the password!": 403} {
		if err := w.s.ChangePassword(ctx, http.Header{}, sess, current, "", "an even longer password", rules, w.client("192.0.2.80")); err == nil ||
			err.(*Refusal).Status != want {
			t.Errorf("current %q: %v", current, err)
		}
	}
	if err := w.s.ChangePassword(ctx, http.Header{}, sess, "a long and fine password", "", "lin", rules, w.client("192.0.2.80")); err == nil ||
		err.(*Refusal).Status != 400 {
		t.Errorf("a refused new password: %v", err)
	}
	trust := [16]byte{1}
	if err := w.s.TOTP.Trust(ctx, "lin", totp.Trust{ID: hex.EncodeToString(trust[:]), Expires: w.s.Clock.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	renewed := http.Header{}
	if err := w.s.ChangePassword(ctx, renewed, sess, "a long and fine password", "", "an even longer password", rules, w.client("192.0.2.80")); err != nil {
		t.Fatal(err)
	}
	if w.s.TOTP.Trusted("lin", trust) {
		t.Error("a trusted browser outlived the password change")
	}
	if s, _ := w.s.Gate.Open(w.back(t, there), false); s != nil {
		t.Error("lin's other session is still open")
	}
	if s, why := w.s.Gate.Open(w.back(t, renewed), false); s == nil || s.User != "lin" {
		t.Errorf("this browser's new session: %q", why)
	}
	if acct, _, _ := w.s.Accounts.Check("lin", "a long and fine password"); acct != nil {
		t.Error("the old password still signs in")
	}
	ada := w.signedIn(t, 1)
	if err := w.s.ChangePassword(ctx, http.Header{}, ada, adaPassword, "", "an even longer password", rules, w.client("192.0.2.82")); err == nil ||
		err.(*Refusal).Status != http.StatusConflict {
		t.Errorf("ada's change: %v", err)
	}
	// an account removed or unreadable meanwhile is a conflict, not a
	// server error
	for _, err := range []error{users.ErrNoUser, users.ErrUnreadable} {
		if r, ok := w.s.usersFailed(err).(*Refusal); !ok || r.Status != http.StatusConflict {
			t.Errorf("%v: %v", err, w.s.usersFailed(err))
		}
	}
}

// TestChangePasswordStepUp: a managed account with a second factor
// changes its password from a fresh sign-in of both, or with a current
// code; a trusted browser's session, though of two factors, needs the
// code.
func TestChangePasswordStepUp(t *testing.T) {
	w := newWorld(t)
	u := withUsers(w)
	ctx := context.Background()
	token, _ := u.Create(ctx, "lin", users.Profile{}, time.Hour)
	w.s.Invite(ctx, http.Header{}, token, "a long and fine password", rules, w.client("192.0.2.85"))
	w.enrol(t, "lin")
	lin, _ := w.s.Accounts.Lookup("lin")
	trusted := w.s.Gate.Start(ctx, http.Header{}, w.wire, lin, gate.Client{IP: "192.0.2.85"}, 2, session.MethodTrusted)
	if err := w.s.ChangePassword(ctx, http.Header{}, trusted, "a long and fine password", "", "an even longer password", rules, w.client("192.0.2.85")); err == nil ||
		err.(*Refusal).Status != http.StatusForbidden {
		t.Errorf("a trusted session without a code: %v", err)
	}
	if err := w.s.ChangePassword(ctx, http.Header{}, trusted, "a long and fine password", w.code(t), "an even longer password", rules, w.client("192.0.2.85")); err != nil {
		t.Errorf("a trusted session with a code: %v", err)
	}
	lin, _ = w.s.Accounts.Lookup("lin")
	fresh := w.s.Gate.Start(ctx, http.Header{}, w.wire, lin, gate.Client{IP: "192.0.2.85"}, 2, session.MethodPassword)
	if err := w.s.ChangePassword(ctx, http.Header{}, fresh, "an even longer password", "", "the longest password so far", rules, w.client("192.0.2.85")); err != nil {
		t.Errorf("a fresh sign-in of two factors: %v", err)
	}
}
