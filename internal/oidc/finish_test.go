package oidc

import (
	"net/url"
	"testing"
	"time"
)

// TestFinish: groups, second factor, prompt and max_age decide the
// callback.
func TestFinish(t *testing.T) {
	f := newFixture(t)
	start := func(clientID, redirect string, edit func(url.Values)) string {
		q := query(clientID, redirect, "openid")
		if edit != nil {
			edit(q)
		}
		id, w := f.authorize(t, q)
		if id == "" {
			t.Fatalf("authorize: %d %s", w.Code, w.Header().Get("Location"))
		}
		return id
	}
	if d := f.p.Finish("forged", f.signed(f.ada, 2)); d.Step != Refuse {
		t.Errorf("a forged request: %+v", d)
	}
	if d := f.p.Finish(start("grafana", grafanaURI, nil), nil); d.Step != SignIn {
		t.Errorf("no session: %+v", d)
	}
	if loc := f.respond(t, start("grafana", grafanaURI, nil), f.signed(f.bob, 1)); loc.Query().Get("error") != "access_denied" {
		t.Errorf("bob outside grafana's groups: %s", loc)
	}
	vault := "https://vault.example.test/cb"
	one := f.signed(f.ada, 1)
	one.HasFactor = true
	f.clock.Advance(2 * time.Second)
	if d := f.p.Finish(start("vault", vault, nil), one); d.Step != SignIn {
		t.Errorf("one factor of two, for a client that needs both: %+v", d)
	}
	if loc := f.respond(t, start("vault", vault, nil), f.signed(f.bob, 1)); loc.Query().Get("error") != "access_denied" {
		t.Errorf("no second factor at all: %s", loc)
	}
	if loc := f.respond(t, start("vault", vault, nil), f.signed(f.ada, 2)); loc.Query().Get("code") == "" {
		t.Errorf("two factors: %s", loc)
	}
	silent := func(q url.Values) { q.Set("prompt", "none") }
	if loc := f.respond(t, start("grafana", grafanaURI, silent), nil); loc.Query().Get("error") != "login_required" {
		t.Errorf("prompt=none without a session: %s", loc)
	}
	// an id_token_hint for ada while bob is signed in
	tok := f.exchange(t, "grafana", grafanaURI, f.code(t, "grafana", grafanaURI, "openid", f.signed(f.ada, 1)))
	f.p.cfg.client("grafana").Groups = nil
	bob := f.signed(f.bob, 1)
	f.clock.Advance(2 * time.Second)
	hinted := func(q url.Values) { q.Set("prompt", "none"); q.Set("id_token_hint", tok.IDToken) }
	if loc := f.respond(t, start("grafana", grafanaURI, hinted), bob); loc.Query().Get("error") != "login_required" {
		t.Errorf("prompt=none with another user's hint: %s", loc)
	}
	if loc := f.respond(t, start("grafana", grafanaURI, hinted), f.signed(f.ada, 1)); loc.Query().Get("code") == "" {
		t.Errorf("prompt=none with the user's own hint: %s", loc)
	}
	old := f.signed(f.ada, 1)
	f.clock.Advance(time.Minute)
	if d := f.p.Finish(start("grafana", grafanaURI, func(q url.Values) { q.Set("max_age", "30") }), old); d.Step != SignIn {
		t.Errorf("max_age shorter than the session: %+v", d)
	}
	if d := f.p.Finish(start("grafana", grafanaURI, func(q url.Values) { q.Set("prompt", "login") }), old); d.Step != SignIn {
		t.Errorf("prompt=login: %+v", d)
	}
	id := start("grafana", grafanaURI, func(q url.Values) { q.Set("prompt", "login") })
	if loc := f.respond(t, id, f.signed(f.ada, 1)); loc.Query().Get("code") == "" {
		t.Errorf("prompt=login after a new sign-in: %s", loc)
	}
	f.clock.Advance(requestLifetime + time.Second)
	if d := f.p.Finish(id, f.signed(f.ada, 1)); d.Step != Refuse {
		t.Errorf("an expired request: %+v", d)
	}
}

// TestACRValues: acr_values=mfa asks a one-factor session of a user
// with a second factor to sign in again; two factors give acr "mfa" in
// the ID token, refreshed ones too; a user without a second factor
// signs in without, and gets no acr; unknown values and requests
// without acr_values get none.
func TestACRValues(t *testing.T) {
	f := newFixture(t)
	f.p.cfg.client("grafana").Groups = nil
	ask := func(values, scope string, s *Signed) (*url.URL, string) {
		q := query("grafana", grafanaURI, scope)
		q.Set("acr_values", values)
		id, w := f.authorize(t, q)
		if id == "" {
			t.Fatalf("authorize: %d %s", w.Code, w.Header().Get("Location"))
		}
		if d := f.p.Finish(id, s); d.Step != Respond {
			return nil, "sign in again"
		}
		loc := f.respond(t, id, s)
		return loc, loc.Query().Get("code")
	}
	one := f.signed(f.ada, 1)
	one.HasFactor = true
	f.clock.Advance(2 * time.Second)
	if _, got := ask("urn:other mfa", "openid", one); got != "sign in again" {
		t.Errorf("acr_values=mfa with one factor of two: %s", got)
	}
	_, code := ask("mfa", "openid offline_access", f.signed(f.ada, 2))
	tok := f.exchange(t, "grafana", grafanaURI, code)
	if acr := f.idClaims(t, tok.IDToken)["acr"]; acr != "mfa" {
		t.Errorf("acr of two factors: %v", acr)
	}
	refreshed := f.token(t, "grafana", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}})
	if acr := f.idClaims(t, refreshed.IDToken)["acr"]; acr != "mfa" {
		t.Errorf("acr of a refreshed ID token: %v", acr)
	}
	for _, tc := range []struct {
		values string
		s      *Signed
	}{{"mfa", f.signed(f.bob, 1)}, {"urn:other", f.signed(f.ada, 2)}, {"", f.signed(f.ada, 2)}} {
		_, code := ask(tc.values, "openid", tc.s)
		if code == "sign in again" {
			t.Errorf("acr_values %q for %s: asked to sign in again", tc.values, tc.s.User)
			continue
		}
		if acr, ok := f.idClaims(t, f.exchange(t, "grafana", grafanaURI, code).IDToken)["acr"]; ok {
			t.Errorf("acr_values %q for %s: acr %v", tc.values, tc.s.User, acr)
		}
	}
}
