package miniapp

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/caddy-miniapp/miniapp/internal/testport"
)

// TestCaddySignInWithDomain: with cookie_domain, a sign-in through a
// provider at the login site is one sign-in for every app of the
// domain: an app behind forward_auth sends the browser to the login
// page, GitHub's preset signs grace in there, and the browser lands on
// the app's page as grace.
func TestCaddySignInWithDomain(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: runs the built Caddy")
	}
	github := fakeGitHub(t)
	port := testport.Free(t)
	auth := fmt.Sprintf("auth.example.test:%d", port)
	config := fmt.Sprintf(`{
	admin localhost:%d
	http_port %d
	auto_https off
	storage file_system %s
}
http://%s {
	miniapp {
		cookie_domain example.test
		login_url http://%s/login
		user grace {
			sign_in_with github 1234567
		}
		sign_in_with github {
			client_id gh-app
			client_secret gh-secret
			auth_url %s/login/oauth/authorize
			token_url %s/login/oauth/access_token
			api_url %s/api
		}
	}
	respond "auth site"
}
http://app1.example.test:%d {
	forward_auth 127.0.0.1:%d {
		uri /miniapp/auth?
		header_up Host %s
		header_up -X-Original-URL
		copy_headers Remote-User
	}
	respond "app1 user={http.request.header.Remote-User}"
}
`, testport.Free(t), port, t.TempDir(), auth, auth, github.URL, github.URL, github.URL, port, port, auth)
	file := filepath.Join(t.TempDir(), "Caddyfile")
	if err := os.WriteFile(file, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	sites := &ssoSites{port: port}
	sites.process = runCaddy(t, ".", t.TempDir(), "--config", file, "--adapter", "caddyfile")
	c := sites.browser(t)
	waitFor(t, c, sites.url("auth", "/hello"), sites.process)

	page := sites.url("app1", "/report")
	resp, _ := call(t, c, "GET", page, "", "Accept", "text/html")
	login, err := resp.Location()
	if resp.StatusCode != http.StatusFound || err != nil || login.Query().Get("next") != page {
		t.Fatalf("the app without a session: %d to %v", resp.StatusCode, login)
	}
	resp, body := call(t, c, "GET", login.String(), "", "Accept", "text/html")
	start := "/login/with/github?next=" + url.QueryEscape(page)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `href="`+strings.ReplaceAll(start, "&", "&amp;")+`"`) {
		t.Fatalf("the login page lacks the GitHub button keeping next: %d", resp.StatusCode)
	}
	target := sites.url("auth", start)
	for range 4 {
		resp, _ = call(t, c, "GET", target, "", "Accept", "text/html")
		loc, err := resp.Location()
		if err != nil {
			t.Fatalf("GET %s: %d", target, resp.StatusCode)
		}
		if target = loc.String(); target == page {
			break
		}
	}
	if target != page {
		t.Fatalf("the sign-in through GitHub ends at %s, want %s", target, page)
	}
	if i := slices.IndexFunc(resp.Cookies(), func(ck *http.Cookie) bool { return ck.Name == "miniapp_session" }); i < 0 || resp.Cookies()[i].Domain != "example.test" {
		t.Errorf("the callback's cookies: %v", resp.Header["Set-Cookie"])
	}
	if resp, body := call(t, c, "GET", page, "", "Accept", "text/html"); resp.StatusCode != http.StatusOK || body != "app1 user=grace" {
		t.Errorf("the app after the sign-in: %d %q", resp.StatusCode, body)
	}
}
