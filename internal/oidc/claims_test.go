package oidc

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/caddy-miniapp/miniapp/internal/session"
)

// TestClaimsPerScope: without profile, email or groups, only sub.
func TestClaimsPerScope(t *testing.T) {
	f := newFixture(t)
	tok := f.exchange(t, "grafana", grafanaURI, f.code(t, "grafana", grafanaURI, "openid", f.signed(f.ada, 1)))
	claims := f.idClaims(t, tok.IDToken)
	for _, k := range []string{"email", "preferred_username", "groups", "name"} {
		if _, ok := claims[k]; ok {
			t.Errorf("scope openid alone gave %s", k)
		}
	}
	if amr, _ := json.Marshal(claims["amr"]); string(amr) != `["pwd"]` {
		t.Errorf("amr %s", amr)
	}
	for _, tc := range []struct {
		factors uint8
		method  session.Method
		want    string
	}{{2, session.MethodPasskey, `["hwk","user","mfa"]`}, {1, session.MethodPasskey, `["hwk"]`}} {
		s := f.signed(f.ada, tc.factors)
		s.Method = tc.method
		tok := f.exchange(t, "grafana", grafanaURI, f.code(t, "grafana", grafanaURI, "openid", s))
		if amr, _ := json.Marshal(f.idClaims(t, tok.IDToken)["amr"]); string(amr) != tc.want {
			t.Errorf("amr of a passkey's session of %d factors: %s, want %s", tc.factors, amr, tc.want)
		}
	}
	_, info, _ := f.userinfo(tok.AccessToken)
	if len(info) != 1 || info["sub"] == nil {
		t.Errorf("userinfo for openid alone: %v", info)
	}
}

// TestSubject: stable per realm and key, different across realms, 22
// URL-safe characters.
func TestSubject(t *testing.T) {
	a, b := Subject("r", "cfg:ada"), Subject("r", "cfg:ada")
	if a != b || len(a) != 22 || strings.ContainsAny(a, ":+/=") {
		t.Errorf("Subject: %q %q", a, b)
	}
	if Subject("other", "cfg:ada") == a || Subject("r", "cfg:bob") == a {
		t.Error("Subject does not tell realms or accounts apart")
	}
}

// TestClientChanged: a token of a client whose groups no longer hold
// the user (a reload) is refused at userinfo and refresh.
func TestClientChanged(t *testing.T) {
	f := newFixture(t)
	tok := f.exchange(t, "grafana", grafanaURI, f.code(t, "grafana", grafanaURI, "openid offline_access", f.signed(f.ada, 1)))
	f.p.cfg.client("grafana").Groups = []string{"admins"}
	if status, _, _ := f.userinfo(tok.AccessToken); status != http.StatusUnauthorized {
		t.Errorf("userinfo after the client's groups left the user out: %d", status)
	}
	if r := f.token(t, "grafana", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}); r.Error != "invalid_grant" {
		t.Errorf("refresh after the client's groups left the user out: %+v", r)
	}
}
