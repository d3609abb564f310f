package miniapp

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/routes"
	"github.com/caddy-miniapp/miniapp/internal/session"
	"github.com/caddy-miniapp/miniapp/internal/signin"
	"github.com/caddy-miniapp/miniapp/store"
)

// stepUpSession is a session cookie of the user over HTTPS for
// passkeyHost that began age ago with the factors, as a sign-in would
// have made it.
func (a *testApp) stepUpSession(user string, factors uint8, age time.Duration) *http.Cookie {
	a.t.Helper()
	acct, ok := a.h.app.Accounts.Lookup(user)
	if !ok {
		a.t.Fatalf("no user %q", user)
	}
	s := session.New(user, acct.ID.Tag(), a.h.app.Shared.Counter(context.Background(), store.AccountID(acct.ID)), a.h.clock.Now().Add(-age),
		time.Duration(a.h.SessionLifetime))
	s.Generation, s.Factors = a.h.app.Shared.Generation(), factors
	name := "__Host-" + "miniapp_session"
	return &http.Cookie{Name: name, Value: a.h.app.Keys.Seal(session.PurposeSession, s, name, passkeyHost)}
}

// setupFor is a setup of a new secret sealed for the session of the
// cookie as the setup page makes it (not stepped up), and that secret.
func (a *testApp) setupFor(cookie *http.Cookie) (enrollment, secret string) {
	a.t.Helper()
	s, err := a.h.app.Keys.Open(session.PurposeSession, cookie.Value, cookie.Name, passkeyHost)
	if err != nil {
		a.t.Fatal(err)
	}
	setup, err := a.h.app.TOTP.NewSetup("test", s.User, s.ID, false)
	if err != nil {
		a.t.Fatal(err)
	}
	return setup.Enrollment, setup.Secret
}

// The proofs a change may need, weakest first, and "never" for a
// change no proof allows.
const (
	proofNone = iota
	proofPassword
	proofCode
	proofNever
)

// stepUpCase is an account of one kind with its second factors set up
// in a fresh app, ready for a change.
type stepUpCase struct {
	a       *testApp
	secret  string // the TOTP secret, if any
	auth    *authenticator
	passkey string // the passkey's ID
}

// newStepUpCase makes ada's account of the kind: "none" (a passkey that
// does not verify its user, which is no second factor), "totp" (one-time
// codes and a passkey) or "passkey" (a passkey alone).
func newStepUpCase(t *testing.T, kind string, required bool) *stepUpCase {
	a := newApp(t, "", func(h *Handler) {
		if required {
			h.SecondFactor = factorRequired
		}
	})
	c := &stepUpCase{a: a}
	if kind == "totp" {
		c.secret = a.enrol("ada", adaPassword).secret
	}
	auth := newAuthenticator(t, passkeyHost)
	auth.verify = kind != "none"
	if w := a.register(auth, a.stepUpSession("ada", 2, 0), "key"); w.Code != 201 {
		t.Fatalf("%s: registering a passkey: %d %q", kind, w.Code, w.Body)
	}
	c.auth, c.passkey = auth, b64url.EncodeToString(auth.id)
	return c
}

// change makes one change of ada's sign-in methods with the session
// and the proof, and returns the status.
func (c *stepUpCase) change(op string, cookie *http.Cookie, proof int) int {
	a := c.a
	a.advance(31 * time.Second) // a code of a step not used yet
	body := ""
	switch proof {
	case proofPassword:
		body = "&password=" + url.QueryEscape(adaPassword)
	case proofCode:
		body = "&current_code=" + a.codeFor(c.secret)
	}
	var r request
	switch op {
	case "add passkey":
		r = passkeyRequest("POST", routes.PasskeysPath, form, "action=begin"+body, cookie)
	case "delete passkey":
		r = passkeyRequest("POST", routes.PasskeysPath, form, "action=delete&id="+c.passkey+body, cookie)
	case "begin TOTP":
		r = passkeyRequest("POST", routes.TOTPPath, form, strings.TrimPrefix(body, "&"), cookie)
	case "confirm TOTP":
		enrollment, secret := a.setupFor(cookie)
		r = passkeyRequest("POST", routes.TOTPPath, form, "enrollment="+url.QueryEscape(enrollment)+"&code="+a.codeFor(secret)+body, cookie)
	}
	return a.do(r).Code
}

// TestStepUpPolicy: every change of an account's sign-in methods under
// each session kind asks exactly for the proof of the one policy: with
// no second factor a recent sign-in or the password; with one a session
// that began with two factors in the last 10 minutes or a current code,
// never the password; with a passkey alone a passkey sign-in of the last
// 10 minutes; and a session that may only enrol may only add.
func TestStepUpPolicy(t *testing.T) {
	old := signin.RecentSignIn + time.Minute
	sessions := []struct {
		name     string
		factors  uint8
		age      time.Duration
		required bool
	}{
		{"one factor, fresh", 1, 0, false},
		{"one factor, old", 1, old, false},
		{"two factors, fresh", 2, 0, false},
		{"two factors, old", 2, old, false},
		{"enrol-only", 1, 0, true},
	}
	// what each account kind needs, per session kind, for an addition
	// and a removal
	needs := map[string][5][2]int{
		"none":    {{proofNone, proofNone}, {proofPassword, proofPassword}, {proofNone, proofNone}, {proofPassword, proofPassword}, {proofNone, proofNever}},
		"totp":    {{proofCode, proofCode}, {proofCode, proofCode}, {proofNone, proofNone}, {proofCode, proofCode}, {proofCode, proofNever}},
		"passkey": {{proofNever, proofNever}, {proofNever, proofNever}, {proofNone, proofNone}, {proofNever, proofNever}, {proofNever, proofNever}},
	}
	for kind, need := range needs {
		for i, s := range sessions {
			for _, op := range []string{"add passkey", "delete passkey", "begin TOTP", "confirm TOTP"} {
				want := need[i][0]
				if op == "delete passkey" {
					want = need[i][1]
				}
				c := newStepUpCase(t, kind, s.required)
				for proof := proofNone; proof <= proofCode; proof++ {
					if kind != "totp" && proof == proofCode {
						continue // no code to give
					}
					got := c.change(op, c.a.stepUpSession("ada", s.factors, s.age), proof)
					allowed := got >= 200 && got < 300
					if allowed != (proof >= want) || !allowed && got != 403 {
						t.Errorf("%s account, %s session, %s with proof %d: %d (needs %d)", kind, s.name, op, proof, got, want)
					}
					if allowed {
						break
					}
				}
			}
		}
	}
}

// TestStepUpTOTPChanges: turning codes off and new recovery codes take
// a current code from any session, never from one that may only enrol.
func TestStepUpTOTPChanges(t *testing.T) {
	for _, required := range []bool{false, true} {
		for _, action := range []string{"disable", "recovery-codes"} {
			c := newStepUpCase(t, "totp", required)
			c.a.advance(31 * time.Second)
			w := c.a.do(passkeyRequest("POST", routes.TOTPPath, form, "action="+action+"&code="+c.a.codeFor(c.secret), c.a.stepUpSession("ada", 1, signin.RecentSignIn+time.Minute)))
			if required && w.Code != 403 || !required && w.Code != 200 {
				t.Errorf("%s from an old session of one factor (required %v): %d %q", action, required, w.Code, w.Body)
			}
		}
	}
}

// TestPasswordCannotRemovePasskey: the attack of the hardening issue,
// in both modes. ada's only second factor is a passkey; with her
// password alone an attacker can neither delete it nor set up codes of
// his own, and her passkey still signs her in.
func TestPasswordCannotRemovePasskey(t *testing.T) {
	for _, required := range []bool{false, true} {
		c := newStepUpCase(t, "passkey", required)
		a := c.a
		attacker := a.httpsLogin("ada", adaPassword)
		if w := a.do(passkeyRequest("POST", routes.PasskeysPath, form, "action=delete&id="+c.passkey+"&password="+url.QueryEscape(adaPassword), attacker)); w.Code != 403 {
			t.Errorf("required %v: deleting the only passkey with the password: %d %q", required, w.Code, w.Body)
		}
		if w := a.do(passkeyRequest("POST", routes.TOTPPath, form, "password="+url.QueryEscape(adaPassword), attacker)); w.Code != 403 {
			t.Errorf("required %v: beginning codes with the password: %d %q", required, w.Code, w.Body)
		}
		enrollment, secret := a.setupFor(attacker)
		w := a.do(passkeyRequest("POST", routes.TOTPPath, form, "enrollment="+url.QueryEscape(enrollment)+"&code="+a.codeFor(secret)+"&password="+url.QueryEscape(adaPassword), attacker))
		if w.Code != 403 {
			t.Errorf("required %v: confirming codes of his own: %d %q", required, w.Code, w.Body)
		}
		if a.h.app.Shared.Record("totp:ada") != nil {
			t.Errorf("required %v: a second factor was enrolled", required)
		}
		if w := a.passkeyLogin(c.auth); w.Code != 200 {
			t.Errorf("required %v: the passkey no longer signs in: %d %q", required, w.Code, w.Body)
		}
	}
}

// TestStepUpPages: the profile's passkey forms and the setup page show
// the one proof that counts: none for a fresh sign-in, the password for
// an old one without a second factor, a current code with codes, and a
// line to sign in with the passkey when it is the only factor; never a
// password field once the account has a second factor.
func TestStepUpPages(t *testing.T) {
	old := signin.RecentSignIn + time.Minute
	for _, tc := range []struct {
		kind     string
		factors  uint8
		age      time.Duration
		want     string
		password bool
	}{
		{"none", 1, 0, "", false},
		{"none", 1, old, `name="password"`, true},
		{"totp", 1, 0, `name="current_code"`, false},
		{"totp", 2, old, `name="current_code"`, false},
		{"passkey", 1, 0, "sign in again with your passkey first", false},
		{"passkey", 2, 0, "", false},
	} {
		c := newStepUpCase(t, tc.kind, false)
		cookie := c.a.stepUpSession("ada", tc.factors, tc.age)
		for _, path := range []string{"/profile", routes.TOTPPath + "?replace=1"} {
			body := c.a.do(request{target: path, accept: "text/html", cookie: cookie, https: true}).Body.String()
			fields := strings.Count(body, `name="current_code"`) + strings.Count(body, `name="password"`) + strings.Count(body, "sign in again with your passkey first")
			if tc.want != "" && !strings.Contains(body, tc.want) || tc.want == "" && fields != 0 || strings.Contains(body, `name="password"`) != tc.password {
				t.Errorf("%s account, %d factors, %v old: %s shows the wrong step-up field (want %q)", tc.kind, tc.factors, tc.age, path, tc.want)
			}
		}
	}
}
