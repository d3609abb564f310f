package miniapp

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/oidc"
	"github.com/caddy-miniapp/miniapp/internal/session"
	"github.com/caddy-miniapp/miniapp/internal/users"
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
)

func TestProvisionErrors(t *testing.T) {
	tests := []struct {
		name string
		h    Handler
		want string
	}{
		{"duplicate", Handler{Accounts: []Account{{Username: "ada", Password: adaHash}, {Username: "ada", Password: adaHash}}}, `duplicate user "ada"`},
		{"bad hash", Handler{Accounts: []Account{{Username: "ada", Password: "plaintext"}}}, `user "ada": password hash must be bcrypt`},
		{"broken bcrypt", Handler{Accounts: []Account{{Username: "ada", Password: "$2a$10$short"}}}, `user "ada": password hash is not valid bcrypt`},
		{"broken argon2id", Handler{Accounts: []Account{{Username: "ada", Password: "$argon2id$v=19$m=x"}}}, `user "ada": password hash is not valid argon2id`},
		{"empty hash", Handler{Accounts: []Account{{Username: "ada"}}}, `user "ada": a password hash is required`},
		{"control in name", Handler{Accounts: []Account{{Username: "a\nb", Password: adaHash}}}, "control characters"},
		{"short key", Handler{Accounts: testAccounts(), SecretKeys: []string{base64.StdEncoding.EncodeToString(session.Random(16))}}, "secret_key 1: key is 16 bytes, at least 32 are required"},
		{"not base64", Handler{Accounts: testAccounts(), SecretKeys: []string{"not base64 at all!"}}, "secret_key 1: key is not base64"},
		{"missing env key", Handler{Accounts: testAccounts(), SecretKeys: []string{"{env.MINIAPP_TEST_UNSET}"}}, "secret_key 1: key is empty"},
		{"oidc without an issuer", Handler{Accounts: testAccounts(), SecretKeys: []string{testKey},
			OIDC: &oidc.Config{Clients: []oidc.Client{{ID: "app", RedirectURIs: []string{"https://app.example.test/cb"}}}}},
			"oidc needs login_url (an absolute URL) or issuer"},
		{"oidc secret from an unset env", Handler{Accounts: testAccounts(), SecretKeys: []string{testKey}, LoginURL: "https://auth.example.test/login",
			OIDC: &oidc.Config{Clients: []oidc.Client{{ID: "app", Secret: "{env.MINIAPP_TEST_UNSET}x", RedirectURIs: []string{"https://app.example.test/cb"}}}}},
			"oidc client app: the secret must be at least 32 characters"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
			defer cancel()
			h := tt.h
			err := h.provision(ctx, &certmagic.FileStorage{Path: t.TempDir()}, zap.NewNop())
			defer func() { _ = h.Cleanup() }()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
		})
	}
}

func TestEnvKey(t *testing.T) {
	t.Setenv("MINIAPP_TEST_KEY", testKey)
	dir := t.TempDir()
	a := newApp(t, dir, func(h *Handler) { h.SecretKeys = []string{"{env.MINIAPP_TEST_KEY}"} })
	c := a.login("ada", adaPassword, false)
	b := newApp(t, dir, nil) // configured with testKey literally
	if w := b.do(request{target: "/profile", cookie: c}); w.Code != 200 {
		t.Fatalf("key from {env.*} differs from the literal key: %d", w.Code)
	}
}

func TestValidate(t *testing.T) {
	for name, h := range map[string]Handler{
		"lifetime":    {SessionLifetime: caddy.Duration(-time.Second), CookieName: "a", MaxBodySize: 1, RevocationSync: 1, IdleTimeout: 1, LoginLimit: &LoginLimit{1, 1}},
		"cookie name": {Realm: "r", SessionLifetime: 1, CookieName: "a;b", MaxBodySize: 1, RevocationSync: 1, IdleTimeout: 1, LoginLimit: &LoginLimit{1, 1}},
		"body size":   {SessionLifetime: 1, CookieName: "a", MaxBodySize: -1, RevocationSync: 1, IdleTimeout: 1, LoginLimit: &LoginLimit{1, 1}},
		"sync":        {SessionLifetime: 1, CookieName: "a", MaxBodySize: 1, RevocationSync: -1, IdleTimeout: 1, LoginLimit: &LoginLimit{1, 1}},
		"idle":        {SessionLifetime: 1, CookieName: "a", MaxBodySize: 1, RevocationSync: 1, IdleTimeout: -1, LoginLimit: &LoginLimit{1, 1}},
		"limit":       {SessionLifetime: 1, CookieName: "a", MaxBodySize: 1, RevocationSync: 1, IdleTimeout: 1, LoginLimit: &LoginLimit{-1, 1}},
		"second_factor": {Realm: "r", SessionLifetime: 1, CookieName: "a", MaxBodySize: 1, RevocationSync: 1, IdleTimeout: 1, LoginLimit: &LoginLimit{1, 1},
			SecondFactor: "always"},
		"totp_issuer": {Realm: "r", SessionLifetime: 1, CookieName: "a", MaxBodySize: 1, RevocationSync: 1, IdleTimeout: 1, LoginLimit: &LoginLimit{1, 1},
			TOTPIssuer: "a:b"},
		"passkey_rp_id suffix": {Realm: "r", SessionLifetime: 1, CookieName: "a", MaxBodySize: 1, RevocationSync: 1, IdleTimeout: 1, LoginLimit: &LoginLimit{1, 1},
			PasskeyRPID: "co.uk"},
		"passkey_rp_id ip": {Realm: "r", SessionLifetime: 1, CookieName: "a", MaxBodySize: 1, RevocationSync: 1, IdleTimeout: 1, LoginLimit: &LoginLimit{1, 1},
			PasskeyRPID: "10.0.0.1"},
	} {
		if err := h.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	good := Handler{Realm: "staff.example-1", SessionLifetime: 1, CookieName: "a", MaxBodySize: 1, RevocationSync: 1, IdleTimeout: 1, LoginLimit: &LoginLimit{1, 1},
		SecondFactor: factorRequired, TOTPIssuer: "Example Corp", PasskeyRPID: "example.com"}
	if err := good.Validate(); err != nil {
		t.Errorf("valid config refused: %v", err)
	}
}

// TestOnlyManagedUsers: a handler without a user line provisions, and
// the accounts made in its store sign in.
func TestOnlyManagedUsers(t *testing.T) {
	a := newApp(t, "", func(h *Handler) { h.Accounts = nil })
	if w := a.do(request{method: "POST", target: "/login", contentType: "application/x-www-form-urlencoded",
		body: "username=ada&password=" + adaPassword}); w.Code != 401 {
		t.Fatalf("a login without users: %d", w.Code)
	}
	ctx := context.Background()
	token, err := a.h.app.Users.Create(ctx, "grace", users.Profile{}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	r, err := a.h.app.Users.Redeem(ctx, token)
	if err != nil {
		t.Fatal(err)
	}
	hash, _ := users.Argon2id.Hash("grace hopper wrote the first compiler")
	if _, err := a.h.app.Users.Use(ctx, r, hash); err != nil {
		t.Fatal(err)
	}
	if c := a.login("grace", "grace hopper wrote the first compiler", false); c == nil {
		t.Error("the managed grace does not sign in")
	}
}

// TestManagedHashUnlike: a load warns where the store has managed
// accounts whose hasher is unlike most of the Caddyfile's hashes (a
// wrong password of theirs then costs another time than an unknown
// name), and only there.
func TestManagedHashUnlike(t *testing.T) {
	dir := t.TempDir()
	argon, err := users.Argon2id.Hash(adaPassword)
	if err != nil {
		t.Fatal(err)
	}
	withArgon := func(h *Handler) { h.Accounts = []Account{{Username: "ada", Password: argon}} }
	a := newApp(t, dir, withArgon)
	if _, err := a.h.app.Users.Create(context.Background(), "mia", users.Profile{}, time.Hour); err != nil {
		t.Fatal(err)
	}
	const warning = "managed accounts' passwords are hashed unlike most of the Caddyfile's"
	for _, c := range []struct {
		name   string
		dir    string
		change func(*Handler)
		warns  bool
	}{
		{"argon2id in both", dir, withArgon, false},
		{"bcrypt in the Caddyfile", dir, nil, true},
		{"bcrypt in the Caddyfile, none managed", "", nil, false},
	} {
		app := newApp(t, c.dir, c.change)
		if got := app.logs.FilterMessageSnippet(warning).Len() > 0; got != c.warns {
			t.Errorf("%s: warned %v", c.name, got)
		}
	}
}
