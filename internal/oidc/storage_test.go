package oidc

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestCodeOnce: a code works once; its second use is invalid_grant and
// ends what the first gave; a wrong verifier or redirect URI is refused.
func TestCodeOnce(t *testing.T) {
	f := newFixture(t)
	code := f.code(t, "grafana", grafanaURI, "openid", f.signed(f.ada, 1))
	first := f.exchange(t, "grafana", grafanaURI, code)
	if first.status != http.StatusOK {
		t.Fatalf("first use: %+v", first)
	}
	again := f.exchange(t, "grafana", grafanaURI, code)
	if again.status != http.StatusBadRequest || again.Error != "invalid_grant" {
		t.Fatalf("second use: %+v", again)
	}
	if status, _, h := f.userinfo(first.AccessToken); status != http.StatusUnauthorized || !strings.Contains(h.Get("WWW-Authenticate"), "invalid_token") {
		t.Errorf("the first use's token after the code's reuse: %d %q", status, h.Get("WWW-Authenticate"))
	}
	for key, want := range map[string]int{"issued grafana code": 1, "issued grafana access_token": 1, "refused grafana code_reused": 1,
		"refused grafana access_token_ended": 1} {
		if got := f.counts.of(key); got != want {
			t.Errorf("count of %q: %d, want %d", key, got, want)
		}
	}

	code = f.code(t, "grafana", grafanaURI, "openid", f.signed(f.ada, 1))
	wrong := f.token(t, "grafana", url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {grafanaURI},
		"code_verifier": {verifier + "x"}})
	if wrong.status != http.StatusBadRequest || wrong.Error != "invalid_grant" {
		t.Errorf("wrong verifier: %+v", wrong)
	}
	if tok := f.token(t, "vault", url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {grafanaURI},
		"code_verifier": {verifier}}); tok.status == http.StatusOK {
		t.Errorf("another client redeemed grafana's code: %+v", tok)
	}
	// neither burnt the code: whoever intercepts one cannot spoil it
	if tok := f.exchange(t, "grafana", grafanaURI, code); tok.status != http.StatusOK {
		t.Errorf("the code after a wrong verifier and another client: %+v", tok)
	}
	code = f.code(t, "grafana", grafanaURI, "openid", f.signed(f.ada, 1))
	if tok := f.exchange(t, "grafana", "https://grafana.example.test/other", code); tok.status != http.StatusBadRequest {
		t.Errorf("another redirect_uri: %+v", tok)
	}
	code = f.code(t, "grafana", grafanaURI, "openid", f.signed(f.ada, 1))
	f.clock.Advance(CodeLifetime + time.Second)
	if tok := f.exchange(t, "grafana", grafanaURI, code); tok.status != http.StatusBadRequest || tok.Error != "invalid_grant" {
		t.Errorf("an expired code: %+v", tok)
	}
}

// TestAuthorizeRefusals: PKCE plain, a public client without PKCE and
// any response type but code go back to the client with an error; an
// unknown client or redirect URI never redirects.
func TestAuthorizeRefusals(t *testing.T) {
	f := newFixture(t)
	for name, edit := range map[string]func(url.Values){
		"plain":       func(q url.Values) { q.Set("code_challenge_method", "plain"); q.Set("code_challenge", verifier) },
		"no method":   func(q url.Values) { q.Del("code_challenge_method"); q.Set("code_challenge", verifier) },
		"public":      func(q url.Values) { q.Set("client_id", "cli"); q.Set("redirect_uri", cliURI); q.Del("code_challenge") },
		"implicit":    func(q url.Values) { q.Set("response_type", "id_token") },
		"no scope":    func(q url.Values) { q.Del("scope") },
		"long state":  func(q url.Values) { q.Set("state", strings.Repeat("s", MaxState+1)) },
		"fragment rm": func(q url.Values) { q.Set("response_mode", "fragment") },
		"short pkce":  func(q url.Values) { q.Set("code_challenge", "abc") },
		"huge state":  func(q url.Values) { q.Set("state", strings.Repeat("<", MaxState)) },
	} {
		q := query("grafana", grafanaURI, "openid")
		edit(q)
		id, w := f.authorize(t, q)
		loc, _ := url.Parse(w.Header().Get("Location"))
		var answer url.Values
		if loc != nil {
			// a response type or mode of the fragment has its error there
			answer, _ = url.ParseQuery(loc.RawQuery + "&" + loc.Fragment)
		}
		if id != "" || w.Code != http.StatusFound || answer.Get("error") == "" || answer.Get("code") != "" {
			t.Errorf("%s: %d %s", name, w.Code, w.Header().Get("Location"))
		}
	}
	for name, q := range map[string]url.Values{
		"unknown client":   query("nobody", grafanaURI, "openid"),
		"unknown uri":      query("grafana", "https://evil.example.test/cb", "openid"),
		"prefix uri":       query("grafana", grafanaURI+"/x", "openid"),
		"public, not ours": query("cli", "http://127.0.0.1/other", "openid"),
	} {
		w, refused := f.serve(http.MethodGet, AuthorizePath+"?"+q.Encode(), nil, nil)
		if !refused || w.Header().Get("Location") != "" {
			t.Errorf("%s: refused %v, %d %s", name, refused, w.Code, w.Header().Get("Location"))
		}
	}
	// a public client's loopback redirect on any port (RFC 8252 §7.3)
	q := query("cli", "http://127.0.0.1:49152/callback", "openid")
	if id, w := f.authorize(t, q); id == "" {
		t.Errorf("a loopback redirect on another port: %d %s", w.Code, w.Header().Get("Location"))
	}
}

// TestPublicClient: a public client's flow with PKCE, no secret.
func TestPublicClient(t *testing.T) {
	f := newFixture(t)
	code := f.code(t, "cli", cliURI, "openid offline_access", f.signed(f.bob, 1))
	tok := f.exchange(t, "cli", cliURI, code)
	if tok.status != http.StatusOK || tok.AccessToken == "" || tok.RefreshToken == "" {
		t.Fatalf("public client: %+v", tok)
	}
}
