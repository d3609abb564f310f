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

// TestRefreshRotation: each use rotates the refresh token; presenting
// a used one is invalid_grant and ends the whole chain.
func TestRefreshRotation(t *testing.T) {
	f := newFixture(t)
	tok := f.exchange(t, "grafana", grafanaURI, f.code(t, "grafana", grafanaURI, "openid offline_access", f.signed(f.ada, 1)))
	if tok.RefreshToken == "" {
		t.Fatalf("no refresh token: %+v", tok)
	}
	refresh := func(rt string) tokenResponse {
		return f.token(t, "grafana", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
	}
	second := refresh(tok.RefreshToken)
	if second.status != http.StatusOK || second.RefreshToken == "" || second.RefreshToken == tok.RefreshToken {
		t.Fatalf("first refresh: %+v", second)
	}
	if grants, err := f.p.Grants("ada"); err != nil || len(grants) != 1 || grants[0].Client != "grafana" || grants[0].Rotation != 1 {
		t.Errorf("grants after a refresh: %+v %v", grants, err)
	}
	if cli := f.token(t, "cli", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {second.RefreshToken}}); cli.status == http.StatusOK {
		t.Errorf("another client used grafana's refresh token: %+v", cli)
	}
	if reused := refresh(tok.RefreshToken); reused.status != http.StatusBadRequest || reused.Error != "invalid_grant" {
		t.Fatalf("a used refresh token: %+v", reused)
	}
	if after := refresh(second.RefreshToken); after.status != http.StatusBadRequest || after.Error != "invalid_grant" {
		t.Errorf("the chain after a reuse: %+v", after)
	}
	if status, _, _ := f.userinfo(second.AccessToken); status != http.StatusUnauthorized {
		t.Errorf("an access token of the chain after a reuse: %d", status)
	}
	if grants, _ := f.p.Grants("ada"); len(grants) != 0 {
		t.Errorf("grants after a reuse: %+v", grants)
	}
}

// TestSignOutEverywhere ends every token of the user; ending one
// browser session ends its tokens but not an offline grant's.
func TestSignOutEverywhere(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	s := f.signed(f.ada, 1)
	online := f.exchange(t, "grafana", grafanaURI, f.code(t, "grafana", grafanaURI, "openid", s))
	offline := f.exchange(t, "grafana", grafanaURI, f.code(t, "grafana", grafanaURI, "openid offline_access", s))
	f.p.shared.Revoke(ctx, s.Session, s.Expires)
	if status, _, _ := f.userinfo(online.AccessToken); status != http.StatusUnauthorized {
		t.Errorf("a session's token after its logout: %d", status)
	}
	if status, _, _ := f.userinfo(offline.AccessToken); status != http.StatusOK {
		t.Errorf("an offline token after the session's logout: %d", status)
	}
	if grants, _ := f.p.Grants("ada"); len(grants) != 1 {
		t.Errorf("grants before sign out everywhere: %+v", grants)
	}
	f.p.shared.SignOutEverywhere(ctx, store.AccountID(f.ada.ID))
	if status, _, _ := f.userinfo(offline.AccessToken); status != http.StatusUnauthorized {
		t.Errorf("an offline token after sign out everywhere: %d", status)
	}
	if grants, _ := f.p.Grants("ada"); len(grants) != 0 {
		t.Errorf("grants listed after sign out everywhere: %+v", grants)
	}
	if tok := f.token(t, "grafana", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {offline.RefreshToken}}); tok.Error != "invalid_grant" {
		t.Errorf("a refresh after sign out everywhere: %+v", tok)
	}
}

// TestRevoke: the revocation endpoint ends a grant; a forged ID does
// nothing.
func TestRevoke(t *testing.T) {
	f := newFixture(t)
	tok := f.exchange(t, "grafana", grafanaURI, f.code(t, "grafana", grafanaURI, "openid offline_access", f.signed(f.ada, 1)))
	h := http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte("grafana:"+secret))}}
	if w, _ := f.serve(http.MethodPost, Prefix+"revoke", url.Values{"token": {"forged"}}, h); w.Code != http.StatusOK {
		t.Errorf("revoking a forged token: %d %s", w.Code, w.Body)
	}
	if status, _, _ := f.userinfo(tok.AccessToken); status != http.StatusOK {
		t.Fatalf("a forged revocation ended a token: %d", status)
	}
	if w, _ := f.serve(http.MethodPost, Prefix+"revoke", url.Values{"token": {tok.RefreshToken}}, h); w.Code != http.StatusOK {
		t.Errorf("revoke: %d %s", w.Code, w.Body)
	}
	if status, _, _ := f.userinfo(tok.AccessToken); status != http.StatusUnauthorized {
		t.Errorf("an access token of a revoked grant: %d", status)
	}
	// an access token without offline_access whose grant ends (code and
	// access token lifetimes) just past an hour's end, while the access
	// token lifetime alone ends before it: the revocation list keeps IDs
	// by the hour they end in
	at := time.Now().Truncate(time.Hour).Add(time.Hour - 10*time.Minute - 30*time.Second)
	if time.Until(at) < 0 {
		at = at.Add(time.Hour)
	}
	f.clock.Advance(time.Until(at))
	online := f.exchange(t, "grafana", grafanaURI, f.code(t, "grafana", grafanaURI, "openid", f.signed(f.ada, 1)))
	if w, _ := f.serve(http.MethodPost, Prefix+"revoke", url.Values{"token": {online.AccessToken}, "token_type_hint": {"access_token"}}, h); w.Code != http.StatusOK {
		t.Errorf("revoke an access token: %d %s", w.Code, w.Body)
	}
	if status, _, _ := f.userinfo(online.AccessToken); status != http.StatusUnauthorized {
		t.Errorf("a revoked access token: %d", status)
	}
}

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

// TestKeyRotation: a new key is listed before it signs; the old one
// stays listed until its tokens have expired.
func TestKeyRotation(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	set, err := f.p.keys()
	if err != nil || len(set.Keys) != 1 {
		t.Fatalf("first key: %v %v", set, err)
	}
	old := set.Keys[0].KID
	kid, err := f.p.Rotate(ctx)
	if err != nil || kid == old {
		t.Fatalf("Rotate: %q %v", kid, err)
	}
	set, _ = f.p.keys()
	if got := set.signing(f.clock.Now()).KID; got != old || len(set.listed(f.clock.Now())) != 2 {
		t.Errorf("right after Rotate: signs with %q, lists %d", got, len(set.listed(f.clock.Now())))
	}
	f.clock.Advance(PublishAhead + time.Second)
	set, _ = f.p.keys()
	if got := set.signing(f.clock.Now()).KID; got != kid || len(set.listed(f.clock.Now())) != 2 {
		t.Errorf("after PublishAhead: signs with %q, lists %d", got, len(set.listed(f.clock.Now())))
	}
	tok := f.exchange(t, "grafana", grafanaURI, f.code(t, "grafana", grafanaURI, "openid", f.signed(f.ada, 1)))
	f.idClaims(t, tok.IDToken)
	f.clock.Advance(f.p.idLifetime() + 2*time.Minute)
	if _, err := f.p.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	set, _ = f.p.keys()
	for _, k := range set.listed(f.clock.Now()) {
		if k.KID == old {
			t.Error("the first key is still listed after its tokens expired")
		}
	}
}

// TestKeysThatDoNotOpen: a realm's signing keys sealed with a key ring
// no longer configured are replaced at start, and the provider signs.
func TestKeysThatDoNotOpen(t *testing.T) {
	dir := t.TempDir()
	first := newFixtureOn(t, filestore.New(&certmagic.FileStorage{Path: dir}))
	old, err := first.p.keys()
	if err != nil {
		t.Fatal(err)
	}
	f := newFixtureOn(t, filestore.New(&certmagic.FileStorage{Path: dir}))
	set, err := f.p.keys()
	if err != nil || len(set.Keys) != 1 || set.Keys[0].KID == old.Keys[0].KID {
		t.Fatalf("keys after a new key ring: %v", err)
	}
	tok := f.exchange(t, "grafana", grafanaURI, f.code(t, "grafana", grafanaURI, "openid", f.signed(f.ada, 1)))
	f.idClaims(t, tok.IDToken)
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
