package oidc

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/account"
	"github.com/caddy-miniapp/miniapp/internal/records"
	"github.com/caddy-miniapp/miniapp/internal/session"
	"github.com/caddy-miniapp/miniapp/internal/testhash"
	"github.com/caddy-miniapp/miniapp/store"
	filestore "github.com/caddy-miniapp/miniapp/store/storage"
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"
	jose "github.com/go-jose/go-jose/v4"
	"go.uber.org/zap"
)

const (
	issuer     = "http://127.0.0.1:9"
	secret     = "0123456789abcdef0123456789abcdef"
	grafanaURI = "https://grafana.example.test/login/generic_oauth"
	cliURI     = "http://127.0.0.1/callback"
	verifier   = "a-verifier-of-at-least-forty-three-characters-0123456789"
)

// challenge is verifier's S256 challenge.
var challenge = func() string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}()

// fixture is a provider over a fresh realm, with ada (staff) and bob.
type fixture struct {
	p      *Provider
	clock  *session.Clock
	ada    *account.Account
	bob    *account.Account
	counts *counts
}

// counts is the provider's counts, as its metrics see them.
type counts struct {
	sync.Mutex
	m map[string]int
}

func (c *counts) Issued(client, kind string) { c.add("issued " + client + " " + kind) }

func (c *counts) Refused(client, reason string) { c.add("refused " + client + " " + reason) }

func (c *counts) add(key string) {
	c.Lock()
	defer c.Unlock()
	c.m[key]++
}

// of is the count of key.
func (c *counts) of(key string) int {
	c.Lock()
	defer c.Unlock()
	return c.m[key]
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	return newFixtureOn(t, filestore.New(&certmagic.FileStorage{Path: t.TempDir()}))
}

// newFixtureOn is newFixture over the store.
func newFixtureOn(t testing.TB, mod store.Module) *fixture {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	clk := new(session.Clock)
	realm, err := store.Join(ctx, mod, store.Options{Realm: "r", Every: time.Hour,
		Remember: time.Hour, Now: clk.Now, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = realm.Release() })
	keys, err := session.NewKeyring([][]byte{session.Random(32)}, "r")
	if err != nil {
		t.Fatal(err)
	}
	accounts, err := account.Load([]account.Config{
		{Username: "ada", Password: testhash.Bcrypt("pw"), Groups: []string{"staff"}, Email: "ada@example.test", Name: "Ada L"},
		{Username: "bob", Password: testhash.Bcrypt("pw")},
	}, "r", caddy.NewReplacer())
	if err != nil {
		t.Fatal(err)
	}
	cfg := &Config{Clients: []Client{
		{ID: "grafana", Secret: secret, RedirectURIs: []string{grafanaURI}, PostLogoutRedirectURIs: []string{"https://grafana.example.test/"},
			Groups: []string{"staff"}},
		{ID: "cli", RedirectURIs: []string{cliURI}},
		{ID: "vault", Secret: secret, RedirectURIs: []string{"https://vault.example.test/cb"}, SecondFactor: "required"},
	}}
	cfg.SetDefaults(issuer+"/login", func(s string) string { return s })
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	c := &counts{m: map[string]int{}}
	p, err := New(ctx, cfg, Options{Realm: "r", Accounts: accounts, Shared: realm,
		Records: &records.Store{Realm: realm, Keys: keys, Logger: zap.NewNop(), Accounts: accounts}, Keys: keys, Clock: clk, Counter: c})
	if err != nil {
		t.Fatal(err)
	}
	ada, _ := accounts.Lookup("ada")
	bob, _ := accounts.Lookup("bob")
	return &fixture{p: p, clock: clk, ada: ada, bob: bob, counts: c}
}

// signed is a browser session of acct with that many factors, begun
// now.
func (f *fixture) signed(acct *account.Account, factors uint8) *Signed {
	now := f.clock.Now().Truncate(time.Second)
	return &Signed{User: acct.Name, Account: acct.ID, Groups: acct.Groups, Session: [16]byte(session.Random(16)),
		Expires: now.Add(12 * time.Hour), Issued: now, Factors: factors, Generation: f.p.shared.Generation(), Key: acct.SubjectKey()}
}

// serve sends a request to the provider's endpoints.
func (f *fixture) serve(method, target string, form url.Values, header http.Header) (*httptest.ResponseRecorder, bool) {
	var body *strings.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	} else {
		body = strings.NewReader("")
	}
	r := httptest.NewRequest(method, issuer+target, body)
	if form != nil {
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range header {
		r.Header[k] = v
	}
	w := httptest.NewRecorder()
	refused := f.p.ServeHTTP(w, r)
	return w, refused
}

// authorize starts an authorization and returns its request ID, or the
// answer when it did not go to the callback.
func (f *fixture) authorize(t testing.TB, q url.Values) (string, *httptest.ResponseRecorder) {
	t.Helper()
	w, refused := f.serve(http.MethodGet, AuthorizePath+"?"+q.Encode(), nil, nil)
	if refused {
		return "", w
	}
	loc, err := url.Parse(w.Header().Get("Location"))
	if w.Code != http.StatusFound || err != nil || loc.Path != CallbackPath {
		return "", w
	}
	return loc.Query().Get("id"), w
}

// query is an authorization request's query for the client.
func query(clientID, redirect, scope string) url.Values {
	return url.Values{"client_id": {clientID}, "redirect_uri": {redirect}, "response_type": {"code"}, "scope": {scope},
		"state": {"st-1"}, "nonce": {"n-1"}, "code_challenge": {challenge}, "code_challenge_method": {"S256"}}
}

// respond finishes a request for s and returns where the browser goes.
func (f *fixture) respond(t testing.TB, id string, s *Signed) *url.URL {
	t.Helper()
	d := f.p.Finish(id, s)
	if d.Step != Respond {
		t.Fatalf("Finish: step %d (%s), want Respond", d.Step, d.Reason)
	}
	w := httptest.NewRecorder()
	f.p.Respond(w, httptest.NewRequest(http.MethodGet, issuer+CallbackPath, nil), d)
	loc, err := url.Parse(w.Header().Get("Location"))
	if w.Code != http.StatusFound || err != nil {
		t.Fatalf("Respond: %d %v", w.Code, err)
	}
	return loc
}

// code runs an authorization for s and returns its code.
func (f *fixture) code(t testing.TB, clientID, redirect, scope string, s *Signed) string {
	t.Helper()
	id, w := f.authorize(t, query(clientID, redirect, scope))
	if id == "" {
		t.Fatalf("authorize: %d %s %s", w.Code, w.Header().Get("Location"), w.Body)
	}
	loc := f.respond(t, id, s)
	if loc.Query().Get("state") != "st-1" || loc.Query().Get("code") == "" {
		t.Fatalf("callback: %s", loc)
	}
	return loc.Query().Get("code")
}

// tokenResponse is the token endpoint's answer.
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	IDToken      string `json:"id_token"`
	Error        string `json:"error"`
	status       int
	cache        string
}

// token posts a token request as the client.
func (f *fixture) token(t testing.TB, clientID string, form url.Values) tokenResponse {
	t.Helper()
	h := http.Header{}
	if clientID == "cli" {
		form.Set("client_id", "cli")
	} else {
		h.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(clientID+":"+secret)))
	}
	w, _ := f.serve(http.MethodPost, TokenPath, form, h)
	var out tokenResponse
	if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil {
		t.Fatalf("token answer %d: %s", w.Code, w.Body)
	}
	out.status, out.cache = w.Code, w.Header().Get("Cache-Control")
	return out
}

// exchange redeems a code with the verifier.
func (f *fixture) exchange(t testing.TB, clientID, redirect, code string) tokenResponse {
	t.Helper()
	return f.token(t, clientID, url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirect},
		"code_verifier": {verifier}})
}

// userinfo asks userinfo with an access token.
func (f *fixture) userinfo(token string) (int, map[string]any, http.Header) {
	w, _ := f.serve(http.MethodGet, UserinfoPath, nil, http.Header{"Authorization": {"Bearer " + token}})
	var claims map[string]any
	_ = json.Unmarshal(w.Body.Bytes(), &claims)
	return w.Code, claims, w.Header()
}

// idClaims checks an ID token's signature against the key set and
// returns its claims.
func (f *fixture) idClaims(t *testing.T, raw string) map[string]any {
	t.Helper()
	w, _ := f.serve(http.MethodGet, Prefix+"keys", nil, nil)
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(w.Body.Bytes(), &set); err != nil {
		t.Fatalf("keys: %s", w.Body)
	}
	sig, err := jose.ParseSignedCompact(raw, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		t.Fatal(err)
	}
	keys := set.Key(sig.Signatures[0].Header.KeyID)
	if len(keys) != 1 {
		t.Fatalf("the key set has no key %q", sig.Signatures[0].Header.KeyID)
	}
	payload, err := sig.Verify(keys[0].Key)
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	return claims
}

// TestCodeFlow: a confidential client's whole flow: the code, the
// tokens (no-store), the ID token's claims and signature, userinfo.
func TestCodeFlow(t *testing.T) {
	f := newFixture(t)
	s := f.signed(f.ada, 2)
	code := f.code(t, "grafana", grafanaURI, "openid profile email groups", s)
	tok := f.exchange(t, "grafana", grafanaURI, code)
	if tok.status != http.StatusOK || tok.AccessToken == "" || tok.IDToken == "" || tok.RefreshToken != "" || tok.cache != "no-store" {
		t.Fatalf("token: %+v", tok)
	}
	claims := f.idClaims(t, tok.IDToken)
	sub := Subject("r", "cfg:ada")
	for k, want := range map[string]any{"iss": issuer, "sub": sub, "aud": "grafana", "nonce": "n-1", "preferred_username": "ada",
		"name": "Ada L", "email": "ada@example.test", "email_verified": true, "sid": SessionID(s.Session[:]),
		"auth_time": float64(s.Issued.Unix())} {
		got := claims[k]
		if list, ok := got.([]any); ok && len(list) == 1 {
			got = list[0]
		}
		if got != want {
			t.Errorf("ID token %s = %v, want %v", k, claims[k], want)
		}
	}
	if amr, _ := json.Marshal(claims["amr"]); string(amr) != `["pwd","otp","mfa"]` {
		t.Errorf("amr %s", amr)
	}
	if groups, _ := json.Marshal(claims["groups"]); string(groups) != `["staff"]` {
		t.Errorf("groups %s", groups)
	}
	status, info, _ := f.userinfo(tok.AccessToken)
	if status != http.StatusOK || info["sub"] != sub || info["email"] != "ada@example.test" || info["preferred_username"] != "ada" {
		t.Errorf("userinfo: %d %v", status, info)
	}
}
