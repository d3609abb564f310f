package idp

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/caddy-miniapp/miniapp/internal/session"
)

// TestSignIn: a whole sign-in gives the identity the ID token vouches
// for, with the groups a header can carry and the provider's MFA.
func TestSignIn(t *testing.T) {
	f := newFakeIdP(t)
	s, p, _ := newService(t, f)
	f.claims = func(c map[string]any) {
		c["groups"] = []any{"staff", "a,b", "x y", "ops", "staff", "bell\a", strings.Repeat("g", 65), 7}
		c["amr"] = []any{"pwd", "otp"}
	}
	id, err := signIn(t, s, p, f)
	if err != nil {
		t.Fatal(err)
	}
	if id.Provider != "company" || id.Subject != "u-1" || id.Email != "ada@example.test" || !id.EmailVerified || id.Username != "ada" ||
		!slices.Equal(id.Groups, []string{"staff", "ops"}) || !id.MFA {
		t.Errorf("identity %+v", id)
	}
	f.claims = func(c map[string]any) { c["groups"] = "one"; c["email_verified"] = false; c["amr"] = []any{"pwd"} }
	if id, err = signIn(t, s, p, f); err != nil || !slices.Equal(id.Groups, []string{"one"}) || id.EmailVerified || id.MFA {
		t.Errorf("identity %+v %v", id, err)
	}
}

// TestFlowKey: a flow's cookie is named by the start of its state, and
// a callback's state that no flow can have names none.
func TestFlowKey(t *testing.T) {
	f := newFakeIdP(t)
	s, p, _ := newService(t, f)
	start, err := s.Begin(context.Background(), p, callback, "")
	if err != nil {
		t.Fatal(err)
	}
	cb := f.authorize(t, start)
	if key, ok := FlowKey(cb.State); !ok || key != start.Key || len(key) != 12 {
		t.Errorf("the state's key %q %v, the start's %q", key, ok, start.Key)
	}
	other, _ := s.Begin(context.Background(), p, callback, "")
	if other.Key == start.Key {
		t.Error("two flows share a cookie")
	}
	for _, state := range []string{"", "short", cb.State + "x", strings.Repeat("!", 43), "../" + cb.State[3:]} {
		if _, ok := FlowKey(state); ok {
			t.Errorf("a flow key for %q", state)
		}
	}
}

// TestFlowIssuer: a flow is bound to the provider's issuer at its
// start: after a config change that moved the provider elsewhere, its
// callback is refused.
func TestFlowIssuer(t *testing.T) {
	f := newFakeIdP(t)
	s, p, _ := newService(t, f)
	ctx := context.Background()
	start, err := s.Begin(ctx, p, callback, "")
	if err != nil {
		t.Fatal(err)
	}
	cb := f.authorize(t, start)
	p.Issuer = newFakeIdP(t).srv.URL
	if _, err := s.Open(ctx, p, callback, start.Cookie, cb); err == nil {
		t.Error("a flow of another issuer opened")
	}
}

// TestOpenRefuses: a callback that does not answer the flow is refused
// before any exchange: another state, a flow of another provider's
// callback, an expired flow, no code, the provider's error (named, never
// echoed), and an iss that is not the issuer's, or missing where the
// provider sends it.
func TestOpenRefuses(t *testing.T) {
	f := newFakeIdP(t)
	s, p, clk := newService(t, f)
	ctx := context.Background()
	begin := func() (Start, Callback) {
		start, err := s.Begin(ctx, p, callback, "")
		if err != nil {
			t.Fatal(err)
		}
		return start, f.authorize(t, start)
	}
	refused := func(what string, callbackURL, cookie string, cb Callback, status int, reason string) {
		t.Helper()
		_, err := s.Open(ctx, p, callbackURL, cookie, cb)
		e, ok := errors.AsType[*Error](err)
		if !ok || e.Status != status || !strings.Contains(e.Reason, reason) {
			t.Errorf("%s: %v", what, err)
		}
	}
	start, cb := begin()
	refused("another state", callback, start.Cookie, Callback{Code: cb.Code, State: "x" + cb.State}, 400, "does not belong")
	refused("another provider's callback", strings.Replace(callback, "company", "github", 1), start.Cookie, cb, 400, "expired")
	refused("no cookie", callback, "", cb, 400, "expired")
	refused("no code", callback, start.Cookie, Callback{State: cb.State}, 400, "no code")
	refused("access_denied", callback, start.Cookie, Callback{State: cb.State, Error: "access_denied"}, 403, "refused or cancelled")
	refused("an odd error", callback, start.Cookie, Callback{State: cb.State, Error: "<script>"}, 400, "did not sign you in")
	if _, err := s.Open(ctx, p, callback, start.Cookie, Callback{State: cb.State, Error: "<script>"}); strings.Contains(err.Error(), "<") {
		t.Errorf("the provider's error echoed: %v", err)
	}
	refused("another iss", callback, start.Cookie, Callback{Code: cb.Code, State: cb.State, Iss: "https://evil.example"}, 400, "issuer")
	if _, err := s.Open(ctx, p, callback, start.Cookie, Callback{Code: cb.Code, State: cb.State, Iss: f.srv.URL}); err != nil {
		t.Errorf("the issuer's iss: %v", err)
	}
	clk.Advance(FlowLifetime)
	refused("expired", callback, start.Cookie, cb, 400, "expired")

	// a provider that sends iss (RFC 9207): an answer without it is refused
	f2 := newFakeIdP(t)
	f2.issParam = true
	s, p, _ = newService(t, f2)
	start, err := s.Begin(ctx, p, callback, "")
	if err != nil {
		t.Fatal(err)
	}
	cb = f2.authorize(t, start)
	refused("no iss", callback, start.Cookie, cb, 400, "issuer")
}

// TestCappedAnswers: a provider's answer larger than maxBodyBytes is
// refused, and a provider whose discovery failed is not asked again at
// once.
func TestCappedAnswers(t *testing.T) {
	asked := 0
	huge := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked++
		_, _ = w.Write([]byte(`{"issuer":"` + strings.Repeat("x", maxBodyBytes) + `"}`))
	}))
	t.Cleanup(huge.Close)
	keys, _ := session.NewKeyring([][]byte{session.Random(32)}, "r")
	clk := new(session.Clock)
	s := New([]Provider{{Name: "huge", Issuer: huge.URL, ClientID: "c", ClientSecret: "s3cret"}}, keys, clk)
	p, _ := s.Provider("huge")
	_, err := s.Begin(context.Background(), p, callback, "")
	if e, ok := errors.AsType[*Error](err); !ok || e.Status != http.StatusBadGateway || !strings.Contains(fmt.Sprint(e.Cause), errTooLarge.Error()) {
		t.Errorf("a huge discovery: %v", err)
	}
	if _, err := s.Begin(context.Background(), p, callback, ""); err == nil || asked != 1 {
		t.Errorf("asked %d times within %v: %v", asked, retryDiscovery, err)
	}
	clk.Advance(retryDiscovery)
	if _, err := s.Begin(context.Background(), p, callback, ""); err == nil || asked != 2 {
		t.Errorf("asked %d times after %v", asked, retryDiscovery)
	}
}
