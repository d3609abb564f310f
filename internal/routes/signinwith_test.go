package routes

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/caddy-miniapp/miniapp/internal/account"
	"github.com/caddy-miniapp/miniapp/internal/idp"
	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
)

// TestSignInWithConfig: a config whose users' links or names do not fit
// its providers is refused at load, naming the user.
func TestSignInWithConfig(t *testing.T) {
	company := idp.Provider{Name: "company", Issuer: "https://idp.example.test", ClientID: "app", ClientSecret: "s3cret"}
	github := idp.Provider{Name: idp.GitHub, ClientID: "gh", ClientSecret: "s3cret"}
	user := func(name string, links ...account.Link) account.Config {
		return account.Config{Username: name, Password: adaHash, Links: links}
	}
	for _, tc := range []struct {
		name  string
		users []account.Config
		want  string
	}{
		{"a name like a guest's", []account.Config{user("company:sub-1")}, `user "company:sub-1": a name may not start with a provider's name`},
		{"a link to no provider", []account.Config{user("ada", account.Link{Provider: "gitlab", Subject: "1"})}, `user "ada": sign_in_with gitlab: no such provider`},
		{"an e-mail link without link_by_email", []account.Config{user("ada", account.Link{Provider: "company", Subject: "ada@example.test"})},
			`user "ada": sign_in_with company ada@example.test: an e-mail address links only where the provider's block says link_by_email`},
		{"GitHub by login", []account.Config{user("ada", account.Link{Provider: "github", Subject: "ada-l"})}, `user "ada": sign_in_with github ada-l: GitHub links by numeric user ID only`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
			defer cancel()
			c := testConfig(t)
			c.Logger, c.Count, c.Accounts, c.SignInWith = zap.NewNop(), new(counts), tc.users, []idp.Provider{company, github}
			a, err := New(ctx, c)
			t.Cleanup(func() { a.Close() })
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}

func TestSignInWith(t *testing.T) {
	x := newTester(t, func(c *Config) {
		c.SignInWith = []idp.Provider{{Name: "company", Label: "Company", Issuer: "https://idp.example.test", ClientID: "app", ClientSecret: "s3cret",
			AuthURL: "https://idp.example.test/auth", TokenURL: "https://idp.example.test/token"}}
	})
	links := x.a.providerLinks("/private/a")
	if len(links) != 1 || links[0].Href != "/login/with/company?next=%2Fprivate%2Fa" || links[0].Label != "Company" {
		t.Errorf("the login page's buttons: %+v", links)
	}
	if x.a.providerLabel("company") != "Company" || x.a.providerLabel("gone") != "gone" {
		t.Error("a provider's label in the sessions list")
	}
	for target, status := range map[string]int{"/login/with/gitlab": 404, "/login/with/company/other": 404, "/login/with/company/callback?state=forged": 400} {
		if w := x.serve((*App).SignInWith, call{method: "GET", target: target}); w.Code != status {
			t.Errorf("%s: %d %q, want %d", target, w.Code, w.Body, status)
		}
	}
	if w := x.serve((*App).SignInWith, call{method: "HEAD", target: "/login/with/company"}); w.Code != http.StatusMethodNotAllowed {
		t.Errorf("HEAD: %d, want 405: it must not start a sign-in", w.Code)
	}
}
