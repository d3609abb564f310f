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
	"time"

	"github.com/caddy-miniapp/miniapp/internal/testport"
)

// TestCaddySignInWithDomain: with cookie_domain, a sign-in through a
// provider at the login site is one sign-in for every app of the
// domain: an app behind forward_auth sends the browser to the login
// page, GitHub's preset signs grace in there, and the browser lands on
// the app's page as grace. A GitHub guest's address counts only where
// GitHub verified it, and the callback's code reaches no log, the
// error log of a refused callback neither.
func TestCaddySignInWithDomain(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: runs the built Caddy")
	}
	github := fakeGitHub(t)
	port := testport.Free(t)
	auth := fmt.Sprintf("auth.example.test:%d", port)
	config := fmt.Sprintf(`{
	debug
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
		guests {
			from github
			email_domains example.test
		}
	}
	respond "auth site"
	handle_errors {
		respond "{err.status_code} {err.message}"
	}
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

	// guests from GitHub at example.test: erin's primary address there
	// is unverified, fay's verified
	for as, want := range map[string]string{"unverified": "", "verified": "github:7654322"} {
		c := sites.browser(t)
		resp, _ := call(t, c, "GET", sites.url("auth", "/login/with/github?next=%2Fprofile"), "", "Accept", "text/html")
		at, err := resp.Location()
		if err != nil {
			t.Fatalf("start: %d", resp.StatusCode)
		}
		resp, _ = call(t, c, "GET", at.String()+"&as="+as, "")
		back, err := resp.Location()
		if err != nil {
			t.Fatalf("the fake GitHub: %d", resp.StatusCode)
		}
		resp, _ = call(t, c, "GET", back.String(), "", "Accept", "text/html")
		if _, body := call(t, c, "GET", page, ""); want == "" && resp.StatusCode != http.StatusForbidden || want != "" && body != "app1 user="+want {
			t.Errorf("the GitHub guest with a primary address %s: %d, app1 says %q", as, resp.StatusCode, body)
		}
	}

	// a refused callback's code stays out of Caddy's logs, its error
	// log too (debug, with handle_errors): the module answers and logs
	// it itself
	state := strings.Repeat("s", 43)
	resp, body = call(t, c, "GET", sites.url("auth", "/login/with/github/callback?state="+state+"%zz&code=leaked-code-1"), "")
	if resp.StatusCode != http.StatusBadRequest || body != "invalid percent-encoding in parameters\n" {
		t.Errorf("a callback with a bad escape: %d %q", resp.StatusCode, body)
	}
	// Caddy's error log writes its line after the answer
	time.Sleep(200 * time.Millisecond)
	out := sites.process.out.String()
	if !strings.Contains(out, `"msg":"sign-in through a provider refused","path":"/login/with/github/callback"`) || strings.Contains(out, "leaked-code-1") || strings.Contains(out, "gh-code") {
		t.Errorf("Caddy's log of the callbacks holds a code, or no line of them:\n%s", out)
	}
}
