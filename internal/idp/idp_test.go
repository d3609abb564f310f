package idp

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/session"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	jose "github.com/go-jose/go-jose/v4"
)

// fakeIdP is an OpenID Connect provider: discovery, keys, and a token
// endpoint that answers a code with the ID token claims the test sets,
// once it checked the client's secret and the PKCE verifier.
type fakeIdP struct {
	srv      *httptest.Server
	key      *rsa.PrivateKey
	issParam bool
	mu       sync.Mutex
	// codes are the codes given, with their request's challenge and
	// nonce
	codes map[string][2]string
	// claims edits the ID token's claims of a code
	claims func(c map[string]any)
	// signer signs the ID token: the provider's key, or another
	signWith *rsa.PrivateKey
	// tokenURL, when set, is the token endpoint discovery names
	tokenURL string
}

func newFakeIdP(t *testing.T) *fakeIdP {
	t.Helper()
	f := &fakeIdP{codes: map[string][2]string{}}
	f.key, _ = rsa.GenerateKey(rand.Reader, 2048)
	f.signWith = f.key
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeIdP) serve(w http.ResponseWriter, r *http.Request) {
	iss := f.srv.URL
	switch r.URL.Path {
	case "/.well-known/openid-configuration":
		tokenURL := iss + "/token"
		if f.tokenURL != "" {
			tokenURL = f.tokenURL
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"issuer": iss, "authorization_endpoint": iss + "/authorize",
			"token_endpoint": tokenURL, "jwks_uri": iss + "/keys", "id_token_signing_alg_values_supported": []string{"RS256"},
			"authorization_response_iss_parameter_supported": f.issParam})
	case "/keys":
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &f.key.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"}}})
	case "/token":
		id, secret, _ := r.BasicAuth()
		if id == "" {
			id, secret = r.PostFormValue("client_id"), r.PostFormValue("client_secret")
		}
		sum := sha256.Sum256([]byte(r.PostFormValue("code_verifier")))
		f.mu.Lock()
		given, ok := f.codes[r.PostFormValue("code")]
		delete(f.codes, r.PostFormValue("code"))
		f.mu.Unlock()
		if id != "client" || secret != "s3cret" || !ok || given[0] != base64.RawURLEncoding.EncodeToString(sum[:]) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"error":"invalid_grant"}`))
			return
		}
		claims := map[string]any{"iss": iss, "sub": "u-1", "aud": "client", "exp": time.Now().Add(time.Minute).Unix(),
			"iat": time.Now().Unix(), "nonce": given[1], "email": "ada@example.test", "email_verified": true, "preferred_username": "ada"}
		if f.claims != nil {
			f.claims(claims)
		}
		signer, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: f.signWith, KeyID: "k1"}}, nil)
		payload, _ := json.Marshal(claims)
		sig, _ := signer.Sign(payload)
		token, _ := sig.CompactSerialize()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": "at", "token_type": "Bearer", "id_token": token})
	default:
		http.NotFound(w, r)
	}
}

// authorize plays the browser at the provider: the start's URL gives a
// code for its challenge, and the callback's query comes back.
func (f *fakeIdP) authorize(t *testing.T, start Start) Callback {
	t.Helper()
	u, err := url.Parse(start.URL)
	if err != nil || !strings.HasPrefix(start.URL, f.srv.URL+"/authorize?") {
		t.Fatalf("start URL %q", start.URL)
	}
	q := u.Query()
	if q.Get("code_challenge_method") != "S256" || q.Get("nonce") == "" || q.Get("state") == "" || q.Get("client_id") != "client" {
		t.Errorf("authorization request %v", q)
	}
	code := base64.RawURLEncoding.EncodeToString(session.Random(16))
	f.mu.Lock()
	f.codes[code] = [2]string{q.Get("code_challenge"), q.Get("nonce")}
	f.mu.Unlock()
	return Callback{Code: code, State: q.Get("state")}
}

const callback = "https://auth.example.test/login/with/company/callback"

// newService is a service with the fake as provider "company".
func newService(t *testing.T, f *fakeIdP) (*Service, *Provider, *session.Clock) {
	t.Helper()
	return newServiceAs(t, f, "company")
}

// newServiceAs is a service with the fake as the provider of the name.
func newServiceAs(t *testing.T, f *fakeIdP, name string) (*Service, *Provider, *session.Clock) {
	t.Helper()
	keys, err := session.NewKeyring([][]byte{session.Random(32)}, "r")
	if err != nil {
		t.Fatal(err)
	}
	clk := new(session.Clock)
	p := Provider{Name: name, Issuer: f.srv.URL, ClientID: "client", ClientSecret: "s3cret", GroupsClaim: "groups"}
	p.SetDefaults(func(s string) string { return s })
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	s := New([]Provider{p}, keys, clk)
	return s, s.providers[0], clk
}

// signIn runs a whole sign-in and returns its identity or error.
func signIn(t *testing.T, s *Service, p *Provider, f *fakeIdP) (Identity, error) {
	t.Helper()
	ctx := context.Background()
	start, err := s.Begin(ctx, p, callback, "/app")
	if err != nil {
		t.Fatal(err)
	}
	cb := f.authorize(t, start)
	flow, err := s.Open(ctx, p, callback, start.Cookie, cb)
	if err != nil {
		t.Fatal(err)
	}
	if flow.Next != "/app" {
		t.Errorf("next %q", flow.Next)
	}
	return s.Exchange(ctx, p, callback, flow, cb.Code)
}

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

// TestIDTokenChecks: an ID token of another issuer or audience, with
// another nonce, expired or signed by another key signs no one in and is
// the client's failure (400, refused); one without a usable sub is the
// provider's (502).
func TestIDTokenChecks(t *testing.T) {
	f := newFakeIdP(t)
	s, p, _ := newService(t, f)
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	for name, edit := range map[string]func(c map[string]any){
		"issuer":    func(c map[string]any) { c["iss"] = "https://evil.example" },
		"audience":  func(c map[string]any) { c["aud"] = "someone-else" },
		"nonce":     func(c map[string]any) { c["nonce"] = "forged" },
		"expired":   func(c map[string]any) { c["exp"] = time.Now().Add(-time.Minute).Unix() },
		"signature": func(map[string]any) { f.signWith = other },
		"sub":       func(c map[string]any) { c["sub"] = "line\nbreak" },
	} {
		f.signWith = f.key
		f.claims = edit
		_, err := signIn(t, s, p, f)
		e, ok := errors.AsType[*Error](err)
		if name == "sub" && (!ok || e.Status != http.StatusBadGateway || e.Refused) || name != "sub" && (!ok || e.Status != http.StatusBadRequest || !e.Refused) {
			t.Errorf("%s: %+v", name, err)
		}
	}
}

// TestExchangeRefused: a code the provider refuses is the client's
// failure (400, refused); a provider that does not answer is not (502).
func TestExchangeRefused(t *testing.T) {
	f := newFakeIdP(t)
	s, p, _ := newService(t, f)
	ctx := context.Background()
	start, err := s.Begin(ctx, p, callback, "")
	if err != nil {
		t.Fatal(err)
	}
	cb := f.authorize(t, start)
	flow, err := s.Open(ctx, p, callback, start.Cookie, cb)
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Exchange(ctx, p, callback, flow, "forged-code")
	if e, ok := errors.AsType[*Error](err); !ok || e.Status != http.StatusBadRequest || !e.Refused {
		t.Errorf("a forged code: %+v", err)
	}
	f.srv.Close()
	_, err = s.Exchange(ctx, p, callback, flow, cb.Code)
	if e, ok := errors.AsType[*Error](err); !ok || e.Status != http.StatusBadGateway || e.Refused {
		t.Errorf("a provider that is down: %+v", err)
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

// TestDiscoveryEndpoints: a discovery document that names an endpoint
// off https (and off loopback) is refused.
func TestDiscoveryEndpoints(t *testing.T) {
	f := newFakeIdP(t)
	f.tokenURL = "http://idp.example.test/token"
	s, p, _ := newService(t, f)
	_, err := s.Begin(context.Background(), p, callback, "")
	if e, ok := errors.AsType[*Error](err); !ok || e.Status != http.StatusBadGateway || !strings.Contains(e.Cause.Error(), "not https") {
		t.Errorf("discovery with an http token endpoint: %v", err)
	}
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

// TestGoogle: Google's word on an e-mail address counts for a Gmail
// address, or one of the Workspace domain (hd) the account belongs to;
// a personal account's other address is not verified here.
func TestGoogle(t *testing.T) {
	f := newFakeIdP(t)
	s, p, _ := newServiceAs(t, f, Google)
	if p.Label != "Google" {
		t.Errorf("label %q", p.Label)
	}
	if other := (&Provider{Name: "workspace", Issuer: googleIssuer}); !other.isGoogle() {
		t.Error("a block of another name with Google's issuer is not Google")
	}
	for _, c := range []struct {
		email, hd string
		verified  bool
	}{
		{"ada@gmail.com", "", true},
		{"ada@example.test", "", false},
		{"ada@example.test", "example.test", true},
		{"ada@Example.Test", "example.test", true},
		{"ada@other.test", "example.test", false},
		{"ada@gmail.com", "example.test", false},
	} {
		f.claims = func(claims map[string]any) {
			claims["email"] = c.email
			if c.hd != "" {
				claims["hd"] = c.hd
			}
		}
		id, err := signIn(t, s, p, f)
		if err != nil || id.EmailVerified != c.verified {
			t.Errorf("%s of hd %q: verified %v %v, want %v", c.email, c.hd, id.EmailVerified, err, c.verified)
		}
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

// TestGitHub: the preset reads the numeric ID, the login and the
// primary e-mail address, verified or not, from the API.
func TestGitHub(t *testing.T) {
	verified := true
	gh := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/login/oauth/access_token":
			if r.PostFormValue("code") != "good" || r.PostFormValue("code_verifier") == "" {
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"access_token":"gho_1","token_type":"bearer","scope":"read:user,user:email"}`))
		case "/api/user", "/api/user/emails":
			if r.Header.Get("Authorization") != "Bearer gho_1" {
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			if r.URL.Path == "/api/user" {
				_, _ = w.Write([]byte(`{"id":1234567,"login":"octo","name":"Octo Cat"}`))
				return
			}
			_ = json.NewEncoder(w).Encode([]map[string]any{{"email": "other@example.test", "primary": false, "verified": true},
				{"email": "octo@example.test", "primary": true, "verified": verified}})
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(gh.Close)
	keys, _ := session.NewKeyring([][]byte{session.Random(32)}, "r")
	p := Provider{Name: GitHub, ClientID: "client", ClientSecret: "s3cret", AuthURL: gh.URL + "/login/oauth/authorize",
		TokenURL: gh.URL + "/login/oauth/access_token", APIURL: gh.URL + "/api"}
	p.SetDefaults(func(s string) string { return s })
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	s := New([]Provider{p}, keys, new(session.Clock))
	ctx := context.Background()
	ghCallback := "https://auth.example.test/login/with/github/callback"
	for _, v := range []bool{true, false} {
		verified = v
		start, err := s.Begin(ctx, s.providers[0], ghCallback, "")
		if err != nil {
			t.Fatal(err)
		}
		u, _ := url.Parse(start.URL)
		if u.Query().Get("scope") != "read:user user:email" || u.Query().Get("code_challenge") == "" {
			t.Errorf("GitHub's authorization request: %v", u.Query())
		}
		flow, err := s.Open(ctx, s.providers[0], ghCallback, start.Cookie, Callback{Code: "good", State: u.Query().Get("state")})
		if err != nil {
			t.Fatal(err)
		}
		id, err := s.Exchange(ctx, s.providers[0], ghCallback, flow, "good")
		if err != nil || id.Subject != "1234567" || id.Username != "octo" || id.Email != "octo@example.test" || id.EmailVerified != v {
			t.Errorf("GitHub identity (primary verified %v): %+v %v", v, id, err)
		}
	}
}

// TestProviderConfig: the Caddyfile block, the presets, and what
// Validate refuses.
func TestProviderConfig(t *testing.T) {
	d := caddyfile.NewTestDispenser(`sign_in_with company {
		issuer https://idp.example.com
		client_id c
		client_secret s
		label "Company account"
		scopes profile email groups
		groups_claim groups
		link_by_email
		trust_provider_mfa
	}`)
	d.Next()
	p, err := ParseProvider(d)
	if err != nil {
		t.Fatal(err)
	}
	p.SetDefaults(func(s string) string { return s })
	if err := p.Validate(); err != nil || p.Label != "Company account" || !p.LinkByEmail || !p.TrustProviderMFA ||
		!slices.Equal(p.Scopes, []string{"openid", "profile", "email", "groups"}) {
		t.Errorf("parsed %+v %v", p, err)
	}
	gh := Provider{Name: GitHub, ClientID: "c", ClientSecret: "s"}
	gh.SetDefaults(func(s string) string { return s })
	if gh.Validate() != nil || gh.AuthURL != githubAuthURL || gh.APIURL != githubAPI || gh.Label != "GitHub" {
		t.Errorf("github preset %+v", gh)
	}
	for name, p := range map[string]Provider{
		"no issuer":               {Name: "company", ClientID: "c", ClientSecret: "s"},
		"http issuer":             {Name: "company", Issuer: "http://idp.example.com", ClientID: "c", ClientSecret: "s"},
		"no secret":               {Name: "company", Issuer: "https://idp.example.com", ClientID: "c"},
		"empty secret":            {Name: "company", Issuer: "https://idp.example.com", ClientID: "c", ClientSecret: "{env.NONE}"},
		"bad name":                {Name: "Company", Issuer: "https://idp.example.com", ClientID: "c", ClientSecret: "s"},
		"github by email":         {Name: GitHub, ClientID: "c", ClientSecret: "s", LinkByEmail: true},
		"github with issuer":      {Name: GitHub, ClientID: "c", ClientSecret: "s", Issuer: "https://github.com"},
		"api_url of another":      {Name: "company", Issuer: "https://idp.example.com", ClientID: "c", ClientSecret: "s", APIURL: "https://x.example"},
		"a token_url with query":  {Name: "company", Issuer: "https://idp.example.com", ClientID: "c", ClientSecret: "s", TokenURL: "https://x.example/t?a=1"},
		"a label with a new line": {Name: "company", Issuer: "https://idp.example.com", ClientID: "c", ClientSecret: "s", Label: "a\nb"},
	} {
		p.SetDefaults(func(s string) string { return strings.ReplaceAll(s, "{env.NONE}", "") })
		if err := p.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	twice := []Provider{{Name: GitHub, ClientID: "c", ClientSecret: "s"}, {Name: GitHub, ClientID: "c", ClientSecret: "s"}}
	for i := range twice {
		twice[i].SetDefaults(func(s string) string { return s })
	}
	if err := ValidateAll(twice); err == nil {
		t.Error("a provider defined twice accepted")
	}
}

// TestGuests: every condition of the block must hold (provider, a
// provider group, a verified address at a domain), and a guest's groups
// are the given ones, then the provider's prefixed with its name.
func TestGuests(t *testing.T) {
	d := caddyfile.NewTestDispenser(`guests {
		from company github
		groups staff ops
		email_domains Example.com
		give_groups readers
	}`)
	d.Next()
	g, err := ParseGuests(d)
	if err != nil {
		t.Fatal(err)
	}
	providers := []Provider{{Name: "company", GroupsClaim: "groups"}, {Name: GitHub}}
	if err := g.Validate(providers); err == nil || !strings.Contains(err.Error(), "groups_claim in sign_in_with github") {
		t.Errorf("groups of a provider without groups: %v", err)
	}
	g.From = []string{"company"}
	if err := g.Validate(providers); err != nil {
		t.Fatal(err)
	}
	ok := Identity{Provider: "company", Subject: "s", Groups: []string{"x", "ops"}, Email: "a@example.COM", EmailVerified: true}
	if !g.Admits(ok) {
		t.Errorf("refused %+v", ok)
	}
	for name, edit := range map[string]func(*Identity){
		"another provider":   func(id *Identity) { id.Provider = "github" },
		"no group":           func(id *Identity) { id.Groups = []string{"x"} },
		"unverified address": func(id *Identity) { id.EmailVerified = false },
		"another domain":     func(id *Identity) { id.Email = "a@example.com.evil" },
		"a subdomain":        func(id *Identity) { id.Email = "a@mail.example.com" },
	} {
		id := ok
		id.Groups = slices.Clone(ok.Groups)
		edit(&id)
		if g.Admits(id) {
			t.Errorf("%s admitted", name)
		}
	}
	two := &Guests{From: []string{"company", "partner"}, Groups: []string{"staff"}}
	providers = append(providers, Provider{Name: "partner", GroupsClaim: "groups"})
	if err := two.Validate(providers); err == nil {
		t.Error("an unqualified group with two providers accepted")
	}
	two.Groups = []string{"company:staff"}
	if err := two.Validate(providers); err != nil {
		t.Fatal(err)
	}
	if two.Admits(Identity{Provider: "partner", Groups: []string{"staff"}}) || !two.Admits(Identity{Provider: "company", Groups: []string{"staff"}}) {
		t.Error("company:staff admits by the group's name at another provider")
	}
	// a partner group named company:staff is partner's, not company's
	if two.Admits(Identity{Provider: "partner", Groups: []string{"company:staff"}}) {
		t.Error("a group of another provider named company:staff admitted")
	}
	two.Groups = []string{"gitlab:staff"}
	if err := two.Validate(providers); err == nil {
		t.Error("a group of a provider not in from accepted")
	}
	if groups := g.GroupsOf("company", []string{"ops"}); !slices.Equal(groups, []string{"readers", "company:ops"}) {
		t.Errorf("groups %v", groups)
	}
	var none *Guests
	if none.Admits(ok) {
		t.Error("no guests block admitted a guest")
	}
	for name, bad := range map[string]*Guests{
		"no from":          {},
		"unknown provider": {From: []string{"gitlab"}},
		"give_groups x,y":  {From: []string{"company"}, GiveGroups: []string{"x,y"}},
		"a domain with @":  {From: []string{"company"}, EmailDomains: []string{"@example.com"}},
	} {
		if bad.Validate(providers) == nil {
			t.Errorf("%s accepted", name)
		}
	}
}
