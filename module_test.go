package miniapp

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/caddyauth"
	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
)

func TestUnmarshalCaddyfile(t *testing.T) {
	good := `miniapp {
		user ada ` + adaHash + `
		user grace ` + graceHash + `
		secret_key {env.MINIAPP_KEY}
		secret_key ` + testKey + `
		session_lifetime 2h
		cookie_name sid
		max_body_size 1MiB
		revocation_sync 3s
		idle_timeout 20m
		login_limit 3 30s
		protect /private/* /docs/*.pdf
		protect /report
	}`
	var h Handler
	if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(good)); err != nil {
		t.Fatal(err)
	}
	if len(h.Accounts) != 2 || h.Accounts[1].Username != "grace" || len(h.SecretKeys) != 2 ||
		time.Duration(h.SessionLifetime) != 2*time.Hour || h.CookieName != "sid" || h.MaxBodySize != 1<<20 ||
		time.Duration(h.RevocationSync) != 3*time.Second || time.Duration(h.IdleTimeout) != 20*time.Minute ||
		h.LoginLimit.Failures != 3 || time.Duration(h.LoginLimit.Window) != 30*time.Second ||
		strings.Join(h.Protect, " ") != "/private/* /docs/*.pdf /report" {
		t.Errorf("parsed %+v", h)
	}

	bad := map[string]string{
		"argument on directive": "miniapp x",
		"unknown":               "miniapp {\n nope 1\n}",
		"user missing hash":     "miniapp {\n user ada\n}",
		"user extra":            "miniapp {\n user ada h x\n}",
		"key missing":           "miniapp {\n secret_key\n}",
		"lifetime bad":          "miniapp {\n session_lifetime soon\n}",
		"lifetime negative":     "miniapp {\n session_lifetime -1h\n}",
		"lifetime duplicate":    "miniapp {\n session_lifetime 1h\n session_lifetime 2h\n}",
		"lifetime extra":        "miniapp {\n session_lifetime 1h 2h\n}",
		"size bad":              "miniapp {\n max_body_size lots\n}",
		"size zero":             "miniapp {\n max_body_size 0\n}",
		"cookie extra":          "miniapp {\n cookie_name a b\n}",
		"sync missing":          "miniapp {\n revocation_sync\n}",
		"idle zero":             "miniapp {\n idle_timeout 0s\n}",
		"limit one arg":         "miniapp {\n login_limit 5\n}",
		"limit bad count":       "miniapp {\n login_limit many 1m\n}",
		"limit zero":            "miniapp {\n login_limit 0 1m\n}",
		"limit bad window":      "miniapp {\n login_limit 5 soon\n}",
		"limit extra":           "miniapp {\n login_limit 5 1m x\n}",
		"protect empty":         "miniapp {\n protect\n}",
	}
	for name, input := range bad {
		var h Handler
		err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input))
		if err == nil {
			t.Errorf("%s: accepted", name)
		} else if !strings.Contains(err.Error(), "Testfile:") {
			t.Errorf("%s: error %q does not name the file and line", name, err)
		}
	}
}

func TestProvisionErrors(t *testing.T) {
	tests := []struct {
		name string
		h    Handler
		want string
	}{
		{"no users", Handler{SecretKeys: []string{testKey}}, "at least one user is required"},
		{"duplicate", Handler{Accounts: []caddyauth.Account{{Username: "ada", Password: adaHash}, {Username: "ada", Password: adaHash}}}, `duplicate user "ada"`},
		{"bad hash", Handler{Accounts: []caddyauth.Account{{Username: "ada", Password: "plaintext"}}}, `user "ada": password hash must be bcrypt`},
		{"broken bcrypt", Handler{Accounts: []caddyauth.Account{{Username: "ada", Password: "$2a$10$short"}}}, `user "ada": password hash is not valid bcrypt`},
		{"broken argon2id", Handler{Accounts: []caddyauth.Account{{Username: "ada", Password: "$argon2id$v=19$m=x"}}}, `user "ada": password hash is not valid argon2id`},
		{"empty hash", Handler{Accounts: []caddyauth.Account{{Username: "ada"}}}, "user 1: name and password hash are required"},
		{"control in name", Handler{Accounts: []caddyauth.Account{{Username: "a\nb", Password: adaHash}}}, "control characters"},
		{"short key", Handler{Accounts: testAccounts(), SecretKeys: []string{base64.StdEncoding.EncodeToString(randomBytes(16))}}, "secret_key 1: key is 16 bytes, at least 32 are required"},
		{"not base64", Handler{Accounts: testAccounts(), SecretKeys: []string{"not base64 at all!"}}, "secret_key 1: key is not base64"},
		{"missing env key", Handler{Accounts: testAccounts(), SecretKeys: []string{"{env.MINIAPP_TEST_UNSET}"}}, "secret_key 1: key is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
			defer cancel()
			h := tt.h
			err := h.provision(ctx, &certmagic.FileStorage{Path: t.TempDir()}, zap.NewNop())
			defer h.Cleanup()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
		})
	}
}

func TestEnvKey(t *testing.T) {
	t.Setenv("MINIAPP_TEST_KEY", testKey)
	a := newApp(t, "", func(h *Handler) { h.SecretKeys = []string{"{env.MINIAPP_TEST_KEY}"} })
	c := a.login("ada", adaPassword, false)
	b := newApp(t, "", nil) // configured with testKey literally
	if w := b.do(request{target: "/profile", cookie: c}); w.Code != 200 {
		t.Fatalf("key from {env.*} differs from the literal key: %d", w.Code)
	}
}

func TestValidate(t *testing.T) {
	for name, h := range map[string]Handler{
		"lifetime":    {SessionLifetime: caddy.Duration(-time.Second), CookieName: "a", MaxBodySize: 1, RevocationSync: 1, IdleTimeout: 1, LoginLimit: &LoginLimit{1, 1}},
		"cookie name": {SessionLifetime: 1, CookieName: "a;b", MaxBodySize: 1, RevocationSync: 1, IdleTimeout: 1, LoginLimit: &LoginLimit{1, 1}},
		"body size":   {SessionLifetime: 1, CookieName: "a", MaxBodySize: -1, RevocationSync: 1, IdleTimeout: 1, LoginLimit: &LoginLimit{1, 1}},
		"sync":        {SessionLifetime: 1, CookieName: "a", MaxBodySize: 1, RevocationSync: -1, IdleTimeout: 1, LoginLimit: &LoginLimit{1, 1}},
		"idle":        {SessionLifetime: 1, CookieName: "a", MaxBodySize: 1, RevocationSync: 1, IdleTimeout: -1, LoginLimit: &LoginLimit{1, 1}},
		"limit":       {SessionLifetime: 1, CookieName: "a", MaxBodySize: 1, RevocationSync: 1, IdleTimeout: 1, LoginLimit: &LoginLimit{-1, 1}},
	} {
		if err := h.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestFakeHashLike(t *testing.T) {
	for _, hash := range []string{adaHash, graceHash} {
		fake, err := fakeHashLike(hash)
		if err != nil {
			t.Fatal(err)
		}
		cmp, err := comparerFor(string(fake))
		if err != nil {
			t.Fatalf("fake %q does not parse: %v", fake, err)
		}
		if ok, err := cmp.Compare(fake, []byte(adaPassword)); ok || err != nil {
			t.Errorf("fake hash matched or failed: %v %v", ok, err)
		}
		prefix := strings.Join(strings.Split(hash, "$")[:4], "$")
		if strings.HasPrefix(hash, "$2") {
			prefix = hash[:7]
		}
		if !strings.HasPrefix(string(fake), prefix) || len(fake) != len(hash) || string(fake) == hash {
			t.Errorf("fake %q does not keep the parameters of %q", fake, hash)
		}
	}
}
