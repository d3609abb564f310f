package idp

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
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

	"github.com/caddy-miniapp/miniapp/internal/session"
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
