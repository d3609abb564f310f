package oidc

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/session"
)

// TestUserinfoRequests: the groups claim is an array even when empty;
// the token may come in a form; another method is 405; cross-origin
// requests are answered for a client's own origin only, never with
// credentials, on userinfo as on the token endpoint.
func TestUserinfoRequests(t *testing.T) {
	f := newFixture(t)
	tok := f.exchange(t, "cli", cliURI, f.code(t, "cli", cliURI, "openid groups", f.signed(f.bob, 1)))
	status, info, h := f.userinfo(tok.AccessToken)
	if groups, _ := json.Marshal(info["groups"]); status != http.StatusOK || string(groups) != "[]" || h.Get("Cache-Control") != "no-store" {
		t.Errorf("userinfo of bob, who has no groups: %d %v %q", status, info, h.Get("Cache-Control"))
	}
	w, _ := f.serve(http.MethodPost, UserinfoPath, url.Values{"access_token": {tok.AccessToken}}, nil)
	if !strings.Contains(w.Body.String(), `"sub":"`+info["sub"].(string)+`"`) {
		t.Errorf("userinfo with the token in a form: %d %s", w.Code, w.Body)
	}
	w, _ = f.serve(http.MethodPost, UserinfoPath, url.Values{"access_token": {tok.AccessToken + "x"}}, nil)
	if w.Code != http.StatusUnauthorized || !strings.Contains(w.Header().Get("WWW-Authenticate"), `error="invalid_token"`) {
		t.Errorf("userinfo with a bad token in a form: %d %q", w.Code, w.Header().Get("WWW-Authenticate"))
	}
	w, _ = f.serve(http.MethodPut, UserinfoPath, nil, http.Header{"Authorization": {"Bearer " + tok.AccessToken}})
	if w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != "GET, HEAD, POST" || strings.Contains(w.Body.String(), "sub") {
		t.Errorf("PUT userinfo: %d %q %s", w.Code, w.Header().Get("Allow"), w.Body)
	}
	for _, path := range []string{UserinfoPath, TokenPath} {
		for origin, allowed := range map[string]bool{"https://grafana.example.test": true, "https://evil.example": false} {
			w, _ := f.serve(http.MethodOptions, path, nil, http.Header{"Origin": {origin}, "Access-Control-Request-Method": {"POST"},
				"Access-Control-Request-Headers": {"authorization"}})
			got := w.Header().Get("Access-Control-Allow-Origin")
			if allowed && got != origin || !allowed && got != "" || w.Header().Get("Access-Control-Allow-Credentials") != "" {
				t.Errorf("preflight of %s from %s: %d, allowed origin %q, credentials %q", path, origin, w.Code, got, w.Header().Get("Access-Control-Allow-Credentials"))
			}
		}
		w, _ := f.serve(http.MethodGet, path, nil, http.Header{"Origin": {"https://evil.example"}, "Authorization": {"Bearer " + tok.AccessToken}})
		if w.Header().Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("%s from another origin allowed", path)
		}
	}
}

// TestEndSession: a hint for the browser's session ends it and goes to
// a registered URI with the state; any other hint ends nothing.
func TestEndSession(t *testing.T) {
	f := newFixture(t)
	s := f.signed(f.ada, 1)
	tok := f.exchange(t, "grafana", grafanaURI, f.code(t, "grafana", grafanaURI, "openid", s))
	ctx := context.Background()
	out := f.p.EndSession(ctx, tok.IDToken, "https://grafana.example.test/", "x y", "", s.Session)
	if !out.End || out.Redirect != "https://grafana.example.test/?state=x+y" {
		t.Errorf("the session's hint: %+v", out)
	}
	if out := f.p.EndSession(ctx, tok.IDToken, "https://evil.example.test/", "", "", s.Session); !out.End || out.Redirect != "" {
		t.Errorf("an unregistered post_logout_redirect_uri: %+v", out)
	}
	if out := f.p.EndSession(ctx, tok.IDToken, "https://grafana.example.test/", "", "", [16]byte(session.Random(16))); out.End {
		t.Errorf("another session's hint: %+v", out)
	}
	forged := tok.IDToken[:len(tok.IDToken)-4] + "AAAA"
	if out := f.p.EndSession(ctx, forged, "", "", "", s.Session); out.End {
		t.Errorf("a forged hint: %+v", out)
	}
	f.clock.Advance(time.Hour)
	if out := f.p.EndSession(ctx, tok.IDToken, "", "", "", s.Session); !out.End {
		t.Errorf("an expired hint of the session: %+v", out)
	}
}

// TestTokenRefusalsCounted: each refusal of the token endpoint is
// counted by its client and error code, whether the client sent its
// secret in the header or the body.
func TestTokenRefusalsCounted(t *testing.T) {
	f := newFixture(t)
	code := f.code(t, "grafana", grafanaURI, "openid", f.signed(f.ada, 1))
	f.token(t, "grafana", url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {grafanaURI},
		"code_verifier": {"not-" + verifier}})
	f.serve(http.MethodPost, TokenPath, url.Values{"grant_type": {"password"}, "client_id": {"cli"}}, nil)
	if n, m := f.counts.of("refused grafana token_invalid_grant"), f.counts.of("refused cli token_unsupported_grant_type"); n != 1 || m != 1 {
		t.Errorf("counted %v", f.counts.m)
	}
}
