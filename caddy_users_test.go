package miniapp

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/routes"
	"github.com/caddy-miniapp/miniapp/internal/testport"
	"github.com/caddy-miniapp/miniapp/internal/testredis"
)

// usersCLI runs `caddy miniapp` against the node's admin API.
func usersCLI(t *testing.T, n *node, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(buildCaddy(t), append([]string{"miniapp"}, append(args, "--address", fmt.Sprintf("localhost:%d", n.admin))...)...)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatal(err)
	}
	return out.String(), cmd.ProcessState.ExitCode()
}

// browserOf is a client with its own cookies that does not follow
// redirects.
func browserOf(t *testing.T) *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// tokenOf is the token of an invite link: after its '#'.
func tokenOf(t *testing.T, out string) string {
	t.Helper()
	_, token, ok := strings.Cut(strings.TrimSpace(out), "/login/invite#")
	if !ok || len(token) != 43 {
		t.Fatalf("no invite link in %q", out)
	}
	return token
}

// TestCaddyUsers: through built Caddys and the CLI, on Redis and on a
// shared storage, an account made in the store on node A accepts its
// invite on node B, signs in, changes its password (its other sessions
// end, on both nodes, this one goes on), is reset (every session ends,
// a new link works once) and is removed (its session and password with
// it); the Caddyfile's ada is left alone, and no token reaches Caddy's
// log.
func TestCaddyUsers(t *testing.T) {
	buildCaddy(t)
	for _, backend := range []string{"redis", "storage"} {
		t.Run(backend, func(t *testing.T) {
			shared, store := t.TempDir(), ""
			if backend == "redis" {
				store = "store redis {\n\t\t\taddress " + testredis.Start(t).Addr + "\n\t\t}"
			}
			nodes := make([]*node, 2)
			for i := range nodes {
				dir := shared
				if backend == "redis" {
					dir = t.TempDir() // nothing shared through Caddy's storage
				}
				nodes[i] = newNode(t, dir)
				// the test's refused passwords and its sign-ins on a node
				// that has not seen a change yet are all one client's
				nodes[i].store = store + "\n\t\tlogin_limit 100 1m"
				nodes[i].writeConfig("ok")
				nodes[i].start()
			}
			for _, n := range nodes {
				n.ready()
			}
			usersOnTwoNodes(t, nodes[0], nodes[1])
		})
	}
}

// usersOnTwoNodes is TestCaddyUsers on nodes a and b of one store.
func usersOnTwoNodes(t *testing.T, a, b *node) {

	out, code := usersCLI(t, a, "user", "add", "grace", "--groups", "staff", "--email", "grace@example.test", "--valid", "2d", "--site", b.url(""))
	if code != 0 || !strings.Contains(out, "made grace") || !strings.Contains(out, b.url("/login/invite#")) {
		t.Fatalf("user add: %d %s", code, out)
	}
	token := tokenOf(t, out)
	if out, code := usersCLI(t, a, "user", "add", "ada"); code != 1 || !strings.Contains(out, "managed in the server's config") {
		t.Errorf("user add of a configured name: %d %s", code, out)
	}
	if out, code := usersCLI(t, a, "user", "add", "grace"); code != 1 || !strings.Contains(out, "exists already") {
		t.Errorf("user add twice: %d %s", code, out)
	}

	// the invite page, then its form on node B
	c := browserOf(t)
	resp, page := call(t, c, "GET", b.url(routes.InvitePath), "", "Accept", "text/html")
	if resp.StatusCode != 200 || !strings.Contains(page, `name="token"`) || !strings.Contains(page, `autocomplete="new-password"`) || !strings.Contains(page, "/miniapp/invite.") {
		t.Fatalf("the invite page: %d", resp.StatusCode)
	}
	form := func(token, password string) string {
		return url.Values{"token": {token}, "password": {password}}.Encode()
	}
	resp, page = call(t, c, "POST", b.url(routes.InvitePath), form(token, "too short"), "Accept", "text/html", "Origin", b.url(""))
	if resp.StatusCode != 400 || !strings.Contains(page, "at least 15 characters") || !strings.Contains(page, `value="`+token+`"`) {
		t.Errorf("a short password: %d, or the page lost the token", resp.StatusCode)
	}
	const first, second, third = "a correct horse, battery staple", "grace hopper wrote the first compiler", "nanoseconds are eleven inches"
	resp, _ = call(t, c, "POST", b.url(routes.InvitePath), form(token, first), "Accept", "text/html", "Origin", b.url(""))
	if resp.StatusCode != 303 || resp.Header.Get("Location") != "/profile" {
		t.Fatalf("the invite: %d %q\n%s", resp.StatusCode, resp.Header.Get("Location"), b.process.out.String())
	}
	if user := profileName(t, c, b); user != "grace" {
		t.Errorf("signed in as %q after the invite", user)
	}
	if _, page := call(t, c, "GET", b.url("/profile"), "", "Accept", "text/html"); !strings.Contains(page, `href="/profile/password"`) {
		t.Error("grace's profile has no link to change her password")
	}
	if resp, _ := call(t, browserOf(t), "POST", a.url(routes.InvitePath), form(token, second), "Origin", a.url("")); resp.StatusCode != 400 {
		t.Errorf("the invite used again, on node A: %d", resp.StatusCode)
	}
	waitUntil(t, func() bool {
		out, _ = usersCLI(t, a, "user", "list")
		return strings.Contains(out, "grace") && strings.Contains(out, "staff") && strings.Contains(out, " set")
	}, "user list on node A shows grace with her password set")

	// her own password: the other session ends, this one goes on
	other := signInAs(t, a, "grace", first)
	for _, tc := range []struct {
		current, next string
		status        int
	}{{"wrong password here!", second, 403}, {first, "short", 400}, {first, "grace", 400}} {
		resp, _ := call(t, c, "POST", b.url(routes.PasswordPath), url.Values{"password": {tc.current}, "new_password": {tc.next}}.Encode(),
			"Accept", "application/json", "Origin", b.url(""))
		if resp.StatusCode != tc.status {
			t.Errorf("a password change %q -> %q: %d, want %d", tc.current, tc.next, resp.StatusCode, tc.status)
		}
	}
	resp, body := call(t, c, "POST", b.url(routes.PasswordPath), url.Values{"password": {first}, "new_password": {second}}.Encode(),
		"Accept", "application/json", "Origin", b.url(""))
	if resp.StatusCode != 200 || body != `{"changed":true}` {
		t.Fatalf("the password change: %d %s", resp.StatusCode, body)
	}
	if user := profileName(t, c, b); user != "grace" {
		t.Error("the session that changed the password ended")
	}
	waitUntil(t, func() bool { return profileName(t, other, a) == "" }, "grace's other session on node A ends")
	waitUntil(t, func() bool {
		resp, _ := call(t, browserOf(t), "POST", a.url("/login"), "username=grace&password="+url.QueryEscape(first), "Origin", a.url(""))
		return resp.StatusCode == 401
	}, "node A refuses the old password")
	signInAs(t, a, "grace", second)
	ada := signInAs(t, a, "ada", adaPassword)
	if resp, _ := call(t, ada, "POST", a.url(routes.PasswordPath), "password=x&new_password=y", "Accept", "application/json", "Origin", a.url("")); resp.StatusCode != 409 {
		t.Errorf("ada's password change: %d", resp.StatusCode)
	}
	if _, page := call(t, ada, "GET", a.url("/profile"), "", "Accept", "text/html"); !strings.Contains(page, "managed in the server&#39;s config") &&
		!strings.Contains(page, "managed in the server's config") {
		t.Error("ada's profile does not say her password is managed in the server's config")
	}

	// the admin API changes her groups; a reset ends her password and
	// sessions, and its link works once
	resp, body = call(t, browserOf(t), "PATCH", fmt.Sprintf("http://localhost:%d/miniapp/users/grace", a.admin), `{"groups":["ops"]}`,
		"Content-Type", "application/json")
	if resp.StatusCode != 200 || !strings.Contains(body, `"groups":["ops"]`) {
		t.Errorf("PATCH grace: %d %s", resp.StatusCode, body)
	}
	if out, code := usersCLI(t, a, "user", "set", "grace", "--groups", "ops,staff", "--name", "Grace Hopper"); code != 0 ||
		!strings.Contains(out, "changed grace (groups ops,staff)") {
		t.Errorf("user set: %d %s", code, out)
	}
	if resp, body := call(t, browserOf(t), "PATCH", fmt.Sprintf("http://localhost:%d/miniapp/users/ada", a.admin), `{"groups":["ops"]}`,
		"Content-Type", "application/json"); resp.StatusCode != 409 {
		t.Errorf("PATCH of the Caddyfile's ada: %d %s", resp.StatusCode, body)
	}
	out, code = usersCLI(t, a, "user", "reset", "grace")
	if code != 0 {
		t.Fatalf("user reset: %s", out)
	}
	reset := tokenOf(t, out)
	waitUntil(t, func() bool { return profileName(t, c, b) == "" }, "grace's session on node B ends with the reset")
	waitUntil(t, func() bool {
		resp, _ := call(t, browserOf(t), "POST", b.url("/login"), "username=grace&password="+url.QueryEscape(second), "Origin", b.url(""))
		return resp.StatusCode == 401
	}, "node B refuses the password before the reset")
	if resp, _ := call(t, c, "POST", b.url(routes.InvitePath), form(reset, third), "Accept", "application/json", "Origin", b.url("")); resp.StatusCode != 200 {
		t.Fatalf("the reset link: %d", resp.StatusCode)
	}

	// removed: her sessions on both nodes and her password end with her
	onA := signInAs(t, a, "grace", third)
	if out, code := usersCLI(t, a, "user", "remove", "grace"); code != 0 || !strings.Contains(out, "removed grace") {
		t.Fatalf("user remove: %d %s", code, out)
	}
	waitUntil(t, func() bool { return profileName(t, c, b) == "" }, "grace's session on node B ends with her account")
	waitUntil(t, func() bool { return profileName(t, onA, a) == "" }, "grace's session on node A ends with her account")
	waitUntil(t, func() bool {
		resp, _ := call(t, browserOf(t), "POST", b.url("/login"), "username=grace&password="+url.QueryEscape(third), "Origin", b.url(""))
		return resp.StatusCode == 401
	}, "node B refuses a removed user's password")
	invite, again := usersAdminAPI(t, b)
	for _, p := range []*node{a, b} {
		for _, secret := range []string{token, reset, first, second, third, invite, again} {
			if strings.Contains(p.process.out.String(), secret) {
				t.Errorf("Caddy's log holds a token or a password")
			}
		}
	}
}

// usersAdminAPI makes, lists, resets (without a site: the link is a
// path alone) and removes a user through the
// node's admin API itself, as a script would, and returns the tokens.
func usersAdminAPI(t *testing.T, n *node) (string, string) {
	t.Helper()
	api := func(method, path, body string) (int, map[string]any, string) {
		resp, text := call(t, browserOf(t), method, fmt.Sprintf("http://localhost:%d%s", n.admin, path), body, "Content-Type", "application/json")
		var out map[string]any
		_ = json.Unmarshal([]byte(text), &out)
		return resp.StatusCode, out, text
	}
	code, made, text := api("POST", "/miniapp/users", `{"name": "hedy", "groups": ["staff"], "email": "hedy@example.test", "display_name": "Hedy Lamarr", "valid": "48h", "site": "`+n.url("")+`"}`)
	invite, _ := made["token"].(string)
	if code != 201 || made["name"] != "hedy" || invite == "" || made["link"] != n.url("/login/invite#")+invite {
		t.Fatalf("POST /miniapp/users: %d %s", code, text)
	}
	if code, _, text := api("GET", "/miniapp/users", ""); code != 200 || !strings.Contains(text, `"name":"hedy","groups":["staff"],"email":"hedy@example.test","display_name":"Hedy Lamarr"`) ||
		!strings.Contains(text, `"password":false`) {
		t.Errorf("GET /miniapp/users: %d %s", code, text)
	}
	code, reset, text := api("POST", "/miniapp/users/hedy/reset", `{"valid": "1h"}`)
	again, _ := reset["token"].(string)
	if code != 200 || again == "" || again == invite || reset["link"] != "/login/invite#"+again {
		t.Errorf("POST /miniapp/users/hedy/reset: %d %s", code, text)
	}
	if resp, _ := call(t, browserOf(t), "POST", n.url(routes.InvitePath), url.Values{"token": {invite}, "password": {"a long and fine password"}}.Encode(),
		"Origin", n.url("")); resp.StatusCode != 400 {
		t.Errorf("the invite a reset replaced: %d", resp.StatusCode)
	}
	if code, out, text := api("DELETE", "/miniapp/users/hedy", ""); code != 200 || out["user"] != "hedy" || out["ended"] != 0.0 {
		t.Errorf("DELETE /miniapp/users/hedy: %d %q", code, text)
	}
	if code, _, text := api("DELETE", "/miniapp/users/hedy", ""); code != 404 {
		t.Errorf("DELETE of a removed user: %d %s", code, text)
	}
	return invite, again
}

// signInAs signs a new browser in on the node, once the node has the
// password (a change on another node reaches it within the store's
// window).
func signInAs(t *testing.T, n *node, user, password string) *http.Client {
	t.Helper()
	c := browserOf(t)
	status := 0
	for deadline := time.Now().Add(5 * time.Second); status != 303 && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		resp, _ := call(t, c, "POST", n.url("/login"), "username="+url.QueryEscape(user)+"&password="+url.QueryEscape(password), "Origin", n.url(""))
		status = resp.StatusCode
	}
	if status != 303 {
		t.Fatalf("%s's login on %s: %d", user, n.url(""), status)
	}
	return c
}

// profileName is the user the browser is signed in as on the node, or "".
func profileName(t *testing.T, c *http.Client, n *node) string {
	t.Helper()
	resp, body := call(t, c, "GET", n.url("/profile"), "", "Accept", "application/json")
	var out struct{ Username string }
	if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &out) != nil {
		return ""
	}
	return out.Username
}

// waitUntil waits for ok within the store's window (revocation_sync 1s,
// and a margin), failing with what.
func waitUntil(t *testing.T, ok func() bool, what string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if ok() {
			return
		}
	}
	t.Errorf("not so: %s", what)
}

// TestCaddyUsersDomain: with cookie_domain, an invite link names
// login_url's host, and a managed account signed in there is seen by an
// app of the domain behind forward_auth like a configured one; its
// token reaches no log.
func TestCaddyUsersDomain(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: runs the built Caddy")
	}
	sites := &ssoSites{port: testport.Free(t)}
	admin := testport.Free(t)
	auth := fmt.Sprintf("auth.example.test:%d", sites.port)
	accessLog := filepath.Join(t.TempDir(), "access.log")
	config := fmt.Sprintf(`{
	admin localhost:%d
	http_port %d
	auto_https off
	storage file_system %s
}
http://%s {
	log {
		output file %s
	}
	miniapp {
		cookie_domain example.test
		login_url http://%s/login
		user ada %s
	}
	respond "auth site"
}
http://app1.example.test:%d {
	forward_auth 127.0.0.1:%d {
		uri /miniapp/auth?group=staff
		header_up Host %s
		header_up -X-Original-URL
		copy_headers Remote-User Remote-Groups
	}
	respond "app1 user={http.request.header.Remote-User} groups={http.request.header.Remote-Groups}"
}
`, admin, sites.port, t.TempDir(), auth, accessLog, auth, adaHash, sites.port, sites.port, auth)
	file := filepath.Join(t.TempDir(), "Caddyfile")
	if err := os.WriteFile(file, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	sites.process = runCaddy(t, ".", t.TempDir(), "--config", file, "--adapter", "caddyfile")
	c := sites.browser(t)
	waitFor(t, c, sites.url("auth", "/hello"), sites.process)

	out, code := usersCLI(t, &node{t: t, admin: admin}, "user", "add", "grace", "--groups", "staff")
	if code != 0 || !strings.Contains(out, "http://"+auth+"/login/invite#") {
		t.Fatalf("user add: %d %s", code, out)
	}
	token := tokenOf(t, out)
	resp, _ := call(t, c, "POST", sites.url("auth", routes.InvitePath), url.Values{"token": {token}, "password": {"grace hopper wrote the first compiler"}}.Encode(),
		"Accept", "text/html", "Origin", sites.url("auth", ""))
	if resp.StatusCode != 303 {
		t.Fatalf("the invite: %d", resp.StatusCode)
	}
	if resp, body := call(t, c, "GET", sites.url("app1", "/report"), ""); resp.StatusCode != 200 || body != "app1 user=grace groups=staff" {
		t.Errorf("the app for grace: %d %q", resp.StatusCode, body)
	}
	logged, err := os.ReadFile(accessLog)
	if err != nil || !strings.Contains(string(logged), routes.InvitePath) {
		t.Fatalf("the access log: %v", err)
	}
	if strings.Contains(string(logged), token) || strings.Contains(sites.process.out.String(), token) {
		t.Error("Caddy's logs hold the invite's token")
	}
}
