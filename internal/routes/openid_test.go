package routes

import (
	"net/http"
	"strings"
	"testing"

	"github.com/caddy-miniapp/miniapp/internal/oidc"
)

func TestOpenID(t *testing.T) {
	x := newTester(t, func(c *Config) {
		c.OIDC = &oidc.Config{Issuer: "https://example.com", Clients: []oidc.Client{{ID: "app", RedirectURIs: []string{"https://app.example.test/cb"}}}}
	})
	if x.a.Provider == nil || x.a.SignIn.Ended == nil || x.a.Passkeys.Ended == nil {
		t.Fatal("the provider is not wired to sign-in and passkeys, which tell it of ended sessions")
	}
	if !strings.Contains(x.a.Site.Policy(), "form-action 'self' https://app.example.test") {
		t.Errorf("the pages' policy does not let a form go on to the client: %q", x.a.Site.Policy())
	}
	w := x.serve((*App).OpenID, call{method: "POST", target: oidc.TokenPath + "?code=secret-code"})
	if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "never in the URL") {
		t.Errorf("a token request with its code in the URL: %d %q, want 400", w.Code, w.Body)
	}
	if x.logs.FilterMessage("OpenID Connect request refused: parameters in the URL").Len() != 1 {
		t.Error("the refused request was not logged in place of the access log")
	}
	if w := x.serve((*App).OpenID, call{method: "GET", target: oidc.UserinfoPath + "?" + strings.Repeat("a", 5000)}); w.Code != http.StatusBadRequest {
		t.Errorf("a long query: %d, want 400", w.Code)
	}
	c := x.login()
	for _, tc := range []struct {
		form   string
		status int
	}{{"grant=zz", 400}, {"grant=" + strings.Repeat("ab", 16), 404}} {
		if w := x.serve((*App).OpenID, call{method: "POST", target: oidc.GrantsPath, form: tc.form, cookie: c}); w.Code != tc.status {
			t.Errorf("sign out of an app, %s: %d, want %d", tc.form, w.Code, tc.status)
		}
	}
	w = x.serve((*App).OpenID, call{method: "GET", target: oidc.EndSessionPath, cookie: c, header: []string{"Accept", "text/html"}})
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `action="/logout"`) || x.session(c) == [16]byte{} {
		t.Errorf("end_session without a hint: %d, want the sign-out page and the session kept; %s", w.Code, w.Body)
	}
	if w := x.serve((*App).OpenID, call{method: "GET", target: oidc.CallbackPath + "?id=unknown", cookie: c}); w.Code != http.StatusBadRequest {
		t.Errorf("the callback of no authorization: %d %q, want 400", w.Code, w.Body)
	}
}
