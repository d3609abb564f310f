package miniapp

import (
	"context"
	"strings"
	"testing"

	"github.com/caddy-miniapp/miniapp/internal/account"
	"github.com/caddy-miniapp/miniapp/internal/idp"
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
)

// TestSignInWithConfig: a config whose users' links or names do not fit
// its providers is refused at load, naming the user.
func TestSignInWithConfig(t *testing.T) {
	company := idp.Provider{Name: "company", Issuer: "https://idp.example.test", ClientID: "app", ClientSecret: "s3cret"}
	github := idp.Provider{Name: idp.GitHub, ClientID: "gh", ClientSecret: "s3cret"}
	user := func(name string, links ...account.Link) Account {
		return Account{Username: name, Password: adaHash, Links: links}
	}
	for _, tc := range []struct {
		name  string
		users []Account
		want  string
	}{
		{"a name like a guest's", []Account{user("company:sub-1")}, `user "company:sub-1": a name may not start with a provider's name`},
		{"a link to no provider", []Account{user("ada", account.Link{Provider: "gitlab", Subject: "1"})}, `user "ada": sign_in_with gitlab: no such provider`},
		{"an e-mail link without link_by_email", []Account{user("ada", account.Link{Provider: "company", Subject: "ada@example.test"})},
			`user "ada": sign_in_with company ada@example.test: an e-mail address links only where the provider's block says link_by_email`},
		{"GitHub by login", []Account{user("ada", account.Link{Provider: "github", Subject: "ada-l"})}, `user "ada": sign_in_with github ada-l: GitHub links by numeric user ID only`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
			defer cancel()
			h := Handler{Accounts: tc.users, SecretKeys: []string{testKey}, SignInWith: []idp.Provider{company, github}}
			err := h.provision(ctx, &certmagic.FileStorage{Path: t.TempDir()}, zap.NewNop())
			defer func() { _ = h.Cleanup() }()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}
