package oidc

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/account"
	"github.com/caddy-miniapp/miniapp/internal/testhash"
	"github.com/caddyserver/caddy/v2"
	jose "github.com/go-jose/go-jose/v4"
)

// receiver is a client's back-channel logout endpoint: it answers
// with status and hands each logout token over.
func receiver(t *testing.T, status int) (string, chan string) {
	t.Helper()
	tokens := make(chan string, 8)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
			t.Errorf("back-channel logout: %s %s", r.Method, r.Header.Get("Content-Type"))
		}
		tokens <- r.PostFormValue("logout_token")
		w.WriteHeader(status)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/bc", tokens
}

// logoutClaims checks a logout token's type and signature against the
// provider's key set and returns its claims.
func (f *fixture) logoutClaims(t *testing.T, raw string) map[string]any {
	t.Helper()
	sig, err := jose.ParseSignedCompact(raw, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		t.Fatal(err)
	}
	if typ := sig.Signatures[0].Header.ExtraHeaders["typ"]; typ != "logout+jwt" {
		t.Errorf("typ %v", typ)
	}
	return f.idClaims(t, raw)
}

// next waits for the next logout token.
func next(t *testing.T, tokens chan string) string {
	t.Helper()
	select {
	case tok := <-tokens:
		return tok
	case <-time.After(10 * time.Second):
		t.Fatal("no logout token")
		return ""
	}
}

// none checks that no logout token comes for a while after what.
func none(t *testing.T, tokens chan string, what string) {
	t.Helper()
	select {
	case <-tokens:
		t.Errorf("%s reached grafana", what)
	case <-time.After(200 * time.Millisecond):
	}
}

// TestBackchannelLogout: a session's logout reaches the clients that
// got tokens through it, with its sid; sign out everywhere reaches
// every client of the user's grants, with its sub.
func TestBackchannelLogout(t *testing.T) {
	f := newFixture(t)
	uri, tokens := receiver(t, http.StatusOK)
	f.p.cfg.client("grafana").BackchannelLogoutURI = uri
	s := f.signed(f.ada, 1)
	f.exchange(t, "grafana", grafanaURI, f.code(t, "grafana", grafanaURI, "openid", s))
	other := f.signed(f.ada, 1)

	f.p.LoggedOut("ada", other.Session[:])
	f.p.LoggedOut("ada", s.Session[:])
	claims := f.logoutClaims(t, next(t, tokens))
	events, _ := json.Marshal(claims["events"])
	if claims["sid"] != SessionID(s.Session[:]) || claims["sub"] != Subject("r", "cfg:ada") || claims["aud"] != "grafana" ||
		claims["iss"] != issuer || string(events) != `{"`+logoutEvent+`":{}}` || claims["nonce"] != nil {
		t.Errorf("logout token of a session: %v", claims)
	}
	none(t, tokens, "another session's logout")

	f.p.LoggedOut("ada", nil)
	claims = f.logoutClaims(t, next(t, tokens))
	if claims["sid"] != nil || claims["sub"] != Subject("r", "cfg:ada") {
		t.Errorf("logout token of sign out everywhere: %v", claims)
	}
	f.p.LoggedOut("bob", nil)
	none(t, tokens, "bob's sign out")
}

// TestBackchannelRetries: a client that fails is tried again, a bounded
// number of times, and the failure counted.
func TestBackchannelRetries(t *testing.T) {
	f := newFixture(t)
	uri, tokens := receiver(t, http.StatusServiceUnavailable)
	f.p.cfg.client("grafana").BackchannelLogoutURI = uri
	s := f.signed(f.ada, 1)
	f.exchange(t, "grafana", grafanaURI, f.code(t, "grafana", grafanaURI, "openid", s))
	f.p.LoggedOut("ada", s.Session[:])
	for range logoutAttempts {
		next(t, tokens)
	}
	deadline := time.Now().Add(5 * time.Second)
	for f.counts.of("refused grafana logout_token_undelivered") != 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := f.counts.of("refused grafana logout_token_undelivered"); n != 1 {
		t.Errorf("undelivered count %d", n)
	}
	none(t, tokens, "an attempt beyond logoutAttempts")
}

// TestSweep: a config that removes a user or gives one a new password
// tells the clients of their grants and noted sessions once (sub, no
// sid), and takes nothing from the record: a node that starts with the
// older config again tells of the newer account's grants but leaves
// them, and they work; a config that changes nothing tells no one, nor
// does a second sweep of the same change.
func TestSweep(t *testing.T) {
	f := newFixture(t)
	uri, tokens := receiver(t, http.StatusOK)
	f.p.cfg.client("grafana").BackchannelLogoutURI = uri
	f.p.cfg.client("cli").BackchannelLogoutURI = uri
	f.exchange(t, "grafana", grafanaURI, f.code(t, "grafana", grafanaURI, "openid", f.signed(f.ada, 1)))
	f.exchange(t, "cli", cliURI, f.code(t, "cli", cliURI, "openid offline_access", f.signed(f.bob, 1)))
	ctx := context.Background()

	f.p.Sweep(ctx)
	none(t, tokens, "a sweep of the same config")

	// ada gets a new password, bob is removed
	changed, err := account.Load([]account.Config{
		{Username: "ada", Password: testhash.Bcrypt("new"), Groups: []string{"staff"}, Email: "ada@example.test"},
	}, "r", caddy.NewReplacer())
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(ctx, f.p.cfg, Options{Realm: "r", Accounts: changed, Shared: f.p.shared, Records: f.p.records,
		Keys: f.p.seal, Clock: f.p.clock, Counter: f.counts})
	if err != nil {
		t.Fatal(err)
	}
	p.Sweep(ctx)
	got := map[string]any{}
	for range 2 {
		claims := f.logoutClaims(t, next(t, tokens))
		if claims["sid"] != nil {
			t.Errorf("a sweep's logout token has a sid: %v", claims)
		}
		got[claims["aud"].(string)] = claims["sub"]
	}
	if got["grafana"] != Subject("r", "cfg:ada") || got["cli"] != Subject("r", "cfg:bob") {
		t.Errorf("logout tokens of the sweep: %v", got)
	}
	p.Sweep(ctx)
	none(t, tokens, "a second sweep")

	// the new ada signs in to cli; a node with the old config tells
	// cli, and the grant stays
	newAda, _ := changed.Lookup("ada")
	s := f.signed(newAda, 1)
	fresh := f.exchange(t, "cli", cliURI, f.code(t, "cli", cliURI, "openid offline_access", s))
	f.p.Sweep(ctx)
	if claims := f.logoutClaims(t, next(t, tokens)); claims["aud"] != "cli" {
		t.Errorf("the old config's sweep told %v", claims)
	}
	if list, err := p.grantsOf("ada"); err != nil || len(list.Grants) != 1 {
		t.Errorf("ada's grants after the old config's sweep: %+v %v", list, err)
	}
	f.p = p
	if tok := f.token(t, "cli", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {fresh.RefreshToken}}); tok.AccessToken == "" {
		t.Errorf("the new grant after the old config's sweep: %+v", tok)
	}
}
