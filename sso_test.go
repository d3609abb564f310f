package miniapp

import (
	"context"
	"fmt"
	"html/template"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/testport"
	"golang.org/x/net/publicsuffix"
)

// ssoSites is one Caddy process that serves an auth site and two app
// sites of example.test on one loopback port: the apps ask the auth site
// through forward_auth, app1 without rules, app2 and app6 for admins
// alone, app4 for ada alone, app5 for sessions of two factors.
type ssoSites struct {
	port    int
	process *caddyProcess
}

// startSSO runs the built binary with the auth site and two apps.
func startSSO(t *testing.T) *ssoSites {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: runs the built Caddy")
	}
	s := &ssoSites{port: testport.Free(t)}
	auth := fmt.Sprintf("auth.example.test:%d", s.port)
	// each app as the README writes it: the rules in uri, or a bare ? for
	// none, and the client's X-Original-URL removed; app6 leaves that
	// header alone, to show the endpoint does not depend on it
	app := func(name, query string) string {
		clear := "header_up -X-Original-URL"
		if name == "app6" {
			clear = ""
		}
		return fmt.Sprintf(`http://%s.example.test:%d {
	forward_auth 127.0.0.1:%d {
		uri /miniapp/auth%s
		header_up Host %s
		%s
		copy_headers Remote-User Remote-Groups Remote-Email Remote-Name
	}
	respond "%s user={http.request.header.Remote-User} groups={http.request.header.Remote-Groups} email={http.request.header.Remote-Email}"
}
`, name, s.port, s.port, query, auth, clear, name)
	}
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
		user ada %s {
			groups admins staff
			email ada@example.test
			name "Ada Lovelace"
		}
		user bob %s
	}
	respond "auth site"
}
`, testport.Free(t), s.port, t.TempDir(), auth, auth, adaHash, adaHash) + app("app1", "?") + app("app2", "?group=admins") +
		app("app4", "?user=ada") + app("app5", "?factor=2") + app("app6", "?group=admins")
	file := filepath.Join(t.TempDir(), "Caddyfile")
	if err := os.WriteFile(file, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	s.process = runCaddy(t, ".", t.TempDir(), "--config", file, "--adapter", "caddyfile")
	waitFor(t, s.browser(t), s.url("auth", "/hello"), s.process)
	return s
}

// url is a URL of one of the sites.
func (s *ssoSites) url(site, path string) string {
	return fmt.Sprintf("http://%s.example.test:%d%s", site, s.port, path)
}

// browser is a client with a cookie jar, for which every *.example.test
// name is this machine, that does not follow redirects.
func (s *ssoSites) browser(t *testing.T) *http.Client {
	jar, err := cookiejar.New(&cookiejar.Options{PublicSuffixList: publicsuffix.List})
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, Timeout: 10 * time.Second, Transport: loopback(),
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// loopback is a transport that dials 127.0.0.1 whatever the name.
func loopback() *http.Transport {
	return &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		_, port, _ := net.SplitHostPort(addr)
		return new(net.Dialer).DialContext(ctx, network, "127.0.0.1:"+port)
	}}
}

// signIn follows a browser from an app page to the login site and back.
func (s *ssoSites) signIn(t *testing.T, c *http.Client, user, page string) string {
	t.Helper()
	resp, _ := call(t, c, "GET", page, "", "Accept", "text/html")
	login := resp.Header.Get("Location")
	if resp.StatusCode != 302 || !strings.HasPrefix(login, s.url("auth", "/login?next=")) {
		t.Fatalf("an app page without a session: %d to %q", resp.StatusCode, login)
	}
	next, _ := url.Parse(login)
	if got := next.Query().Get("next"); got != page {
		t.Fatalf("next %q, want the app page %q", got, page)
	}
	if resp, _ := call(t, c, "GET", login, "", "Accept", "text/html"); resp.StatusCode != 200 {
		t.Fatalf("the login page: %d", resp.StatusCode)
	}
	resp, _ = call(t, c, "POST", login, "username="+user+"&password="+adaPassword, "Origin", s.url("auth", ""))
	if resp.StatusCode != 303 || resp.Header.Get("Location") != page {
		t.Fatalf("sign-in: %d to %q, want %q", resp.StatusCode, resp.Header.Get("Location"), page)
	}
	_, body := call(t, c, "GET", page, "", "Accept", "text/html")
	return body
}

// TestSingleSignOn: a browser without a session on an app is sent to
// the login site with next, signs in, lands back on the app, which sees
// who it is; the second app opens without a new login, or refuses a
// user outside its group; a spoofed Remote-* header never reaches an
// app; logout on the login site ends access to both apps at once; an API
// client gets 401.
func TestSingleSignOn(t *testing.T) {
	s := startSSO(t)
	ada, bob := s.browser(t), s.browser(t)
	page := s.url("app1", "/docs/page?x=1")
	if body := s.signIn(t, ada, "ada", page); body != "app1 user=ada groups=admins,staff email=ada@example.test" {
		t.Errorf("app1 after sign-in: %q", body)
	}
	if _, body := call(t, ada, "GET", s.url("app2", "/"), "", "Accept", "text/html"); body != "app2 user=ada groups=admins,staff email=ada@example.test" {
		t.Errorf("app2 without a new login: %q", body)
	}
	// bob has no email: a Remote-Email he sends is dropped by copy_headers
	if body := s.signIn(t, bob, "bob", page); body != "app1 user=bob groups= email=" {
		t.Errorf("app1 for bob: %q", body)
	}
	if _, body := call(t, bob, "GET", page, "", "Remote-Email", "boss@example.com", "Remote-User", "ada", "Remote-Groups", "admins"); body != "app1 user=bob groups= email=" {
		t.Errorf("bob with spoofed Remote-* headers: %q", body)
	}
	s.checkNotAllowed(t, bob, "bob", s.url("app2", "/docs?x=1"))
	if resp, _ := call(t, &http.Client{Transport: loopback(), Timeout: 10 * time.Second}, "GET", page, "", "Accept", "application/json"); resp.StatusCode != 401 {
		t.Errorf("an API client without a session: %d", resp.StatusCode)
	}
	resp, _ := call(t, ada, "POST", s.url("auth", "/logout"), "next="+url.QueryEscape(s.url("app1", "/")), "Origin", s.url("auth", ""))
	if resp.StatusCode != 303 || resp.Header.Get("Location") != s.url("app1", "/") {
		t.Fatalf("logout: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	for _, app := range []string{"app1", "app2"} {
		if resp, _ := call(t, ada, "GET", s.url(app, "/"), "", "Accept", "text/html"); resp.StatusCode != 302 {
			t.Errorf("%s after logout: %d, want 302 to the login site", app, resp.StatusCode)
		}
	}
}

// nginxApps runs nginx on a free port with the README's auth_request
// config in front of static pages: / without rules, /admin/ for
// admins, /ada/ for ada, /two/ for sessions of two factors, and /bare/
// for admins without the lines that clear the client's X-Forwarded-*
// headers (the endpoint must not depend on them). It returns the port.
func nginxApps(t *testing.T, s *ssoSites) int {
	t.Helper()
	nginx, err := exec.LookPath("nginx")
	if err != nil {
		missing(t, "nginx (Debian package nginx-light)")
	}
	dir, port := t.TempDir(), testport.Free(t)
	for _, page := range []string{"www/index.html", "www/admin/index.html", "www/ada/index.html", "www/two/index.html", "www/bare/index.html"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, page)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, page), []byte("nginx "+page+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	auth := func(name, query string, clear bool) string {
		headers := ""
		if clear {
			headers = `proxy_set_header X-Forwarded-Uri "";
			proxy_set_header X-Forwarded-Host "";
			proxy_set_header X-Forwarded-Proto "";
			proxy_set_header X-Forwarded-Method "";`
		}
		return fmt.Sprintf(`location = /%s {
			internal;
			proxy_pass http://127.0.0.1:%d/miniapp/auth%s;
			proxy_pass_request_body off;
			proxy_set_header Content-Length "";
			proxy_set_header Host auth.example.test:%d;
			proxy_set_header X-Original-URL $scheme://$http_host$request_uri;
			%s
		}`, name, s.port, query, s.port, headers)
	}
	app := func(path, check string) string {
		return fmt.Sprintf(`location %s {
			auth_request /%s;
			auth_request_set $auth_user $upstream_http_remote_user;
			auth_request_set $auth_groups $upstream_http_remote_groups;
			auth_request_set $auth_login $upstream_http_location;
			error_page 401 = @login;
			add_header X-Remote-User $auth_user always;
			add_header X-Remote-Groups $auth_groups always;
		}`, path, check)
	}
	locations := []string{auth("miniapp-auth", "", true), auth("miniapp-auth-admins", "?group=admins", true),
		auth("miniapp-auth-ada", "?user=ada", true), auth("miniapp-auth-two", "?factor=2", true), auth("miniapp-auth-bare", "?group=admins", false),
		app("/", "miniapp-auth"), app("/admin/", "miniapp-auth-admins"), app("/ada/", "miniapp-auth-ada"), app("/two/", "miniapp-auth-two"),
		app("/bare/", "miniapp-auth-bare")}
	config := fmt.Sprintf(`worker_processes 1;
master_process off;
daemon off;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log;
events {}
http {
	access_log off;
	client_body_temp_path %[1]s/body;
	proxy_temp_path %[1]s/proxy;
	fastcgi_temp_path %[1]s/fastcgi;
	uwsgi_temp_path %[1]s/uwsgi;
	scgi_temp_path %[1]s/scgi;
	server {
		listen 127.0.0.1:%[2]d;
		root %[1]s/www;
		%[3]s
		location @login {
			if ($auth_login = "") {
				return 401;
			}
			return 302 $auth_login;
		}
	}
}
`, dir, port, strings.Join(locations, "\n\t\t"))
	file := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(file, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(nginx, "-c", file, "-p", dir)
	out := new(strings.Builder)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	c := &http.Client{Transport: loopback(), Timeout: 10 * time.Second}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		resp, err := c.Get(fmt.Sprintf("http://app3.example.test:%d/", port))
		if err == nil {
			_ = resp.Body.Close()
			return port
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx did not start: %v\n%s", err, out)
		}
	}
}

// checkNotAllowed: a user a site's rules refuse gets 403 with a page
// styled from the login site, whose "sign in as someone else" signs out
// on the login site and goes on to its login page with next = the page;
// a client that is no browser gets the one-line reason.
func (s *ssoSites) checkNotAllowed(t *testing.T, c *http.Client, user, page string) {
	t.Helper()
	resp, body := call(t, c, "GET", page, "", "Accept", "text/html")
	auth := s.url("auth", "")
	again := auth + "/logout?next=" + url.QueryEscape(auth+"/login?next="+url.QueryEscape(page))
	csp := resp.Header.Get("Content-Security-Policy")
	if resp.StatusCode != 403 || !strings.Contains(body, `<link rel="stylesheet" href="`+auth+`/miniapp/style.`) ||
		!strings.Contains(body, "signed in as <strong>"+user+"</strong>") || !strings.Contains(body, `href="`+template.HTMLEscapeString(again)+`">Sign in as someone else`) ||
		!strings.Contains(csp, "style-src 'self' "+auth+";") {
		t.Fatalf("the refused page: %d, CSP %q\n%s", resp.StatusCode, csp, body)
	}
	style := body[strings.Index(body, auth+"/miniapp/style."):]
	if resp, _ := call(t, c, "GET", style[:strings.IndexByte(style, '"')], ""); resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/css; charset=utf-8" {
		t.Errorf("its stylesheet: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if resp, body := call(t, c, "GET", page, "", "Accept", "application/json"); resp.StatusCode != 403 || !strings.Contains(body, "may not use this site") {
		t.Errorf("a JSON client refused: %d %q", resp.StatusCode, body)
	}
	if resp, body := call(t, c, "GET", again, "", "Accept", "text/html"); resp.StatusCode != 200 || !strings.Contains(body, `action="/logout"`) {
		t.Fatalf("the sign-out page: %d", resp.StatusCode)
	}
	resp, _ = call(t, c, "POST", auth+"/logout", "next="+url.QueryEscape(auth+"/login?next="+url.QueryEscape(page)), "Origin", auth)
	if want := auth + "/login?next=" + url.QueryEscape(page); resp.StatusCode != 303 || resp.Header.Get("Location") != want {
		t.Errorf("signing out to sign in as someone else: %d to %q, want %q", resp.StatusCode, resp.Header.Get("Location"), want)
	}
	if resp, _ := call(t, c, "GET", page, "", "Accept", "text/html"); resp.StatusCode != 302 {
		t.Errorf("the page after signing out: %d, want 302 to the login site", resp.StatusCode)
	}
}

// TestSingleSignOnNginx: two apps behind nginx's auth_request ask the
// same endpoint, configured as the README shows: without a session a
// browser goes to the login site (401 and error_page, as nginx takes no
// redirect from auth_request) and an API client gets 401; with one the
// apps see the user and groups; the admins' app refuses bob with 403;
// logout on the login site ends both.
func TestSingleSignOnNginx(t *testing.T) {
	s := startSSO(t)
	port := nginxApps(t, s)
	ada, bob := s.browser(t), s.browser(t)
	page := fmt.Sprintf("http://app3.example.test:%d/index.html?id=7", port)
	admin := fmt.Sprintf("http://app3.example.test:%d/admin/index.html", port)
	resp, _ := call(t, ada, "GET", page, "", "Accept", "text/html")
	want := s.url("auth", "/login?next="+url.QueryEscape(page))
	if resp.StatusCode != 302 || resp.Header.Get("Location") != want {
		t.Fatalf("nginx without a session: %d to %q, want %q", resp.StatusCode, resp.Header.Get("Location"), want)
	}
	if resp, _ := call(t, ada, "GET", page, ""); resp.StatusCode != 401 {
		t.Errorf("an API client behind nginx: %d, want 401", resp.StatusCode)
	}
	if body := s.signIn(t, ada, "ada", page); body != "nginx www/index.html\n" {
		t.Errorf("the nginx app after sign-in: %q", body)
	}
	resp, _ = call(t, ada, "GET", admin, "", "Accept", "text/html")
	if resp.StatusCode != 200 || resp.Header.Get("X-Remote-User") != "ada" || resp.Header.Get("X-Remote-Groups") != "admins,staff" {
		t.Errorf("the admins' app for ada: %d, user %q, groups %q", resp.StatusCode, resp.Header.Get("X-Remote-User"), resp.Header.Get("X-Remote-Groups"))
	}
	s.signIn(t, bob, "bob", page)
	if resp, _ := call(t, bob, "GET", admin, "", "Accept", "text/html"); resp.StatusCode != 403 {
		t.Errorf("the admins' app for bob: %d, want 403", resp.StatusCode)
	}
	call(t, ada, "POST", s.url("auth", "/logout"), "", "Origin", s.url("auth", ""))
	for _, u := range []string{page, admin} {
		if resp, _ := call(t, ada, "GET", u, "", "Accept", "text/html"); resp.StatusCode != 302 {
			t.Errorf("%s after logout: %d, want 302", u, resp.StatusCode)
		}
	}
}

// spoofs are the ways a client may try to lift a site's rule query q
// (such as group=admins) on a request for path: the rule in the app's
// query, repeated, in another case, percent-encoded, and the whole query
// in the headers an auth endpoint reads for the original URL. Each is a
// path and header pairs.
func spoofs(host, path, q string) [][]string {
	k, v, _ := strings.Cut(q, "=")
	return [][]string{
		{path + "?" + q},
		{path + "?" + q + "&" + q},
		{path + "?" + strings.ToUpper(k) + "=" + v},
		{path + "?" + url.QueryEscape(k) + "%3D" + v},
		{path + "?" + "%" + fmt.Sprintf("%02X", k[0]) + k[1:] + "=" + v},
		{path + "?x=1", "X-Forwarded-Uri", "/x?" + q},
		{path + "?" + q, "X-Forwarded-Uri", "/x?" + q},
		{path, "X-Original-URL", "http://" + host + "/x?" + q},
		{path + "?" + q, "X-Original-URL", "http://" + host + path + "?" + q, "X-Forwarded-Uri", path + "?" + q},
	}
}

// TestSingleSignOnRulesHold: through a real Caddy forward_auth, no
// client can lift a site's rule (group, user, factor=2) by repeating it
// in the app's query or in X-Forwarded-Uri or X-Original-URL, encoded,
// repeated or in another case; a site without rules, in the README's
// form, whose app URLs carry ?user=... still lets every user in.
func TestSingleSignOnRulesHold(t *testing.T) {
	s := startSSO(t)
	ada, bob := s.browser(t), s.browser(t)
	s.signIn(t, ada, "ada", s.url("app1", "/"))
	s.signIn(t, bob, "bob", s.url("app1", "/"))
	for _, tc := range []struct {
		app, rule string
		c         *http.Client
	}{{"app2", "group=admins", bob}, {"app6", "group=admins", bob}, {"app4", "user=ada", bob}, {"app5", "factor=2", ada}} {
		host := strings.TrimPrefix(s.url(tc.app, ""), "http://")
		for _, spoof := range spoofs(host, "/secret", tc.rule) {
			for _, accept := range []string{"text/html", "application/json"} {
				header := append([]string{"Accept", accept}, spoof[1:]...)
				if resp, body := call(t, tc.c, "GET", s.url(tc.app, spoof[0]), "", header...); resp.StatusCode != 403 {
					t.Errorf("%s (%s) with %q %v: %d %q, want 403", tc.app, tc.rule, spoof[0], spoof[1:], resp.StatusCode, body)
				}
			}
		}
	}
	if _, body := call(t, ada, "GET", s.url("app2", "/secret"), "", "Accept", "text/html"); !strings.HasPrefix(body, "app2 user=ada") {
		t.Errorf("app2 for ada: %q", body)
	}
	for _, c := range []*http.Client{ada, bob} {
		if resp, body := call(t, c, "GET", s.url("app1", "/search?user=nobody&group=x&factor=3"), "", "Accept", "text/html"); resp.StatusCode != 200 || !strings.HasPrefix(body, "app1 user=") {
			t.Errorf("app1 (no rules) with ?user=...: %d %q", resp.StatusCode, body)
		}
	}
}

// TestSingleSignOnNginxRulesHold: the same attempts behind nginx's
// auth_request, configured as the README shows and, at /bare/, without
// the lines that clear the client's X-Forwarded-* headers.
func TestSingleSignOnNginxRulesHold(t *testing.T) {
	s := startSSO(t)
	port := nginxApps(t, s)
	ada, bob := s.browser(t), s.browser(t)
	host := fmt.Sprintf("app3.example.test:%d", port)
	s.signIn(t, ada, "ada", "http://"+host+"/index.html")
	s.signIn(t, bob, "bob", "http://"+host+"/index.html")
	for _, tc := range []struct {
		path, rule string
		c          *http.Client
	}{{"/admin/index.html", "group=admins", bob}, {"/bare/index.html", "group=admins", bob}, {"/ada/index.html", "user=ada", bob}, {"/two/index.html", "factor=2", ada}} {
		for _, spoof := range spoofs(host, tc.path, tc.rule) {
			for _, accept := range []string{"text/html", "application/json"} {
				header := append([]string{"Accept", accept}, spoof[1:]...)
				if resp, body := call(t, tc.c, "GET", "http://"+host+spoof[0], "", header...); resp.StatusCode != 403 {
					t.Errorf("%s (%s) with %q %v: %d %q, want 403", tc.path, tc.rule, spoof[0], spoof[1:], resp.StatusCode, body)
				}
			}
		}
	}
	for _, path := range []string{"/admin/index.html", "/bare/index.html", "/ada/index.html"} {
		if resp, _ := call(t, ada, "GET", "http://"+host+path+"?group=nobody", "", "Accept", "text/html"); resp.StatusCode != 200 {
			t.Errorf("%s for ada: %d", path, resp.StatusCode)
		}
	}
	if resp, _ := call(t, bob, "GET", "http://"+host+"/index.html?user=nobody", "", "Accept", "text/html"); resp.StatusCode != 200 {
		t.Errorf("/ (no rules) for bob with ?user=...: %d", resp.StatusCode)
	}
}
