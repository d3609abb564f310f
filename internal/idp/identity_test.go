package idp

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/session"
)

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
