package miniapp

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/testport"
	"github.com/caddyserver/caddy/v2/caddytest"
)

// The integration tests run one real Caddy in this process (caddytest),
// one test after another, on these ports, free when the tests start.
var (
	httpPort  = testport.Free(nil)
	httpsPort = testport.Free(nil)
)

var (
	httpBase  = fmt.Sprintf("http://localhost:%d", httpPort)
	httpsBase = fmt.Sprintf("https://localhost:%d", httpsPort)
	// httpErrorsBase is the site whose errors go to handle_errors.
	httpErrorsBase = fmt.Sprintf("http://errors.localhost:%d", httpPort)
)

// site is a running Caddy with the example's shape: log, encode, miniapp,
// file_server; plus a second site whose errors go to handle_errors.
type site struct {
	t        *testing.T
	tester   *caddytest.Tester
	config   string
	logFile  string
	debugLog string
	storage  string
}

// startCaddy loads the test Caddyfile; extra goes into the miniapp block.
// storageDir is Caddy's storage, shared between restarts of one test.
func startCaddy(t *testing.T, storageDir, extra string) *site {
	t.Helper()
	return startCaddyFor(t, storageDir, extra, "")
}

// startCaddyFor is startCaddy with the site also answering host over
// HTTPS (when not empty).
func startCaddyFor(t *testing.T, storageDir, extra, host string) *site {
	t.Helper()
	also := ""
	if host != "" {
		also = ", " + host
	}
	if testing.Short() {
		t.Skip("integration test: runs a real Caddy")
	}
	public, err := filepath.Abs("public")
	if err != nil {
		t.Fatal(err)
	}
	testdata, err := filepath.Abs("testdata")
	if err != nil {
		t.Fatal(err)
	}
	logDir := t.TempDir()
	logFile := filepath.Join(logDir, "access.log")
	debugLog := filepath.Join(logDir, "caddy.log")
	config := fmt.Sprintf(`{
	admin localhost:2999
	http_port %d
	https_port %d
	skip_install_trust
	storage file_system %s
	servers {
		trusted_proxies static 127.0.0.1/8
		client_ip_headers X-Forwarded-For
		timeouts {
			read_header 2s
			read_body 2s
			idle 30s
		}
	}
	log default {
		output file %s
		level DEBUG
	}
}
localhost, http://localhost%s {
	log {
		output file %s
	}
	encode gzip
	request_body {
		max_size 1MB
	}
	miniapp {
		user ada %s
		user grace %s
		login_limit 3 1m
		protect /private/*
		%s
	}
	route /whoami {
		respond "user={http.miniapp.user}"
	}
	handle /private/* {
		root * %s
		file_server
	}
	root * %s
	file_server
}
http://errors.localhost {
	miniapp {
		user ada %s
	}
	handle_errors {
		respond "styled {err.status_code}: {err.message}"
	}
}
`, httpPort, httpsPort, storageDir, debugLog, also, logFile, adaHash, graceHash, extra, testdata, public, adaHash)
	tester := caddytest.NewTester(t)
	tester.InitServer(config, "caddyfile")
	s := &site{t: t, tester: tester, config: config, logFile: logFile, debugLog: debugLog, storage: storageDir}
	s.waitHTTPS()
	return s
}

// waitHTTPS waits until the internal CA has issued the site certificate.
func (s *site) waitHTTPS() {
	client := s.client()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := client.Get(httpsBase + "/hello")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("HTTPS not ready: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// client is an HTTP client with its own cookie jar that does not follow
// redirects, so each step of a flow is seen. Its requests come from a
// client IP of their own (X-Forwarded-For from the trusted loopback), so
// the throttle counts of one test do not reach another.
func (s *site) client() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{
		Transport:     forwardedFor{nextIP(), caddytest.CreateTestingTransport()},
		Jar:           jar,
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// forwardedFor adds an X-Forwarded-For header to requests without one.
type forwardedFor struct {
	ip   string
	base http.RoundTripper
}

func (f forwardedFor) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Header.Get("X-Forwarded-For") == "" {
		r = r.Clone(r.Context())
		r.Header.Set("X-Forwarded-For", f.ip)
	}
	return f.base.RoundTrip(r)
}

// call sends one request and returns the response with its body read.
func call(t *testing.T, c *http.Client, method, target, body string, header ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, target, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", form)
	}
	for i := 0; i+1 < len(header); i += 2 {
		if header[i] == "Host" {
			req.Host = header[i+1]
		}
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, target, err)
	}
	return resp, string(b)
}

func TestCaddyRoutes(t *testing.T) {
	s := startCaddy(t, t.TempDir(), "")
	c := s.client()
	for _, base := range []string{httpBase, httpsBase} {
		if resp, body := call(t, c, "GET", base+"/hello?name=World", ""); resp.StatusCode != 200 || body != "Hello, World!" {
			t.Errorf("%s/hello: %d %q", base, resp.StatusCode, body)
		}
		resp, body := call(t, c, "GET", base+"/hello?name=Ada", "", "Accept", "application/json")
		if body != `{"message":"Hello, Ada!"}` || resp.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s/hello JSON: %q", base, body)
		}
		if resp, body := call(t, c, "GET", base+"/", ""); resp.StatusCode != 200 || !strings.Contains(body, `href="/login"`) {
			t.Errorf("%s/ not served by file_server: %d", base, resp.StatusCode)
		}
		if resp, body := call(t, c, "GET", base+"/miniapp/style.css", ""); resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/css") ||
			resp.Header.Get("Cache-Control") != "public, max-age=300" || !strings.Contains(body, "--accent") {
			t.Errorf("%s/miniapp/style.css, the stylesheet the home page links: %d %v", base, resp.StatusCode, resp.Header)
		}
		for _, path := range []string{"/nope", "/hello/", "/HELLO"} {
			if resp, _ := call(t, c, "GET", base+path, ""); resp.StatusCode != 404 {
				t.Errorf("%s%s: %d, want 404 from file_server", base, path, resp.StatusCode)
			}
		}
		if resp, body := call(t, c, "GET", base+"/hello?name=%zz", ""); resp.StatusCode != 400 || body != "invalid percent-encoding in parameters\n" {
			t.Errorf("%s bad query: %d %q", base, resp.StatusCode, body)
		}
	}

	// the transport leaves a response compressed when we ask ourselves
	resp, body := call(t, c, "GET", httpsBase+"/login", "", "Accept-Encoding", "gzip", "Accept", "text/html")
	if resp.Header.Get("Content-Encoding") != "gzip" || !strings.HasPrefix(body, "\x1f\x8b") {
		t.Errorf("login page not gzipped: %q", resp.Header.Get("Content-Encoding"))
	}

	call(t, c, "GET", httpBase+"/hello?name=LogLine", "")
	if !s.accessLogHas("/hello?name=LogLine") {
		t.Error("no access log line with the path, status and a duration")
	}
}

// accessLogHas waits for an access log line for uri with a status and a
// positive duration.
func (s *site) accessLogHas(uri string) bool {
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		f, err := os.Open(s.logFile)
		if err == nil {
			scanner := bufio.NewScanner(f)
			for scanner.Scan() {
				var entry struct {
					Request struct {
						URI string `json:"uri"`
					} `json:"request"`
					Duration float64 `json:"duration"`
					Status   int     `json:"status"`
				}
				if json.Unmarshal(scanner.Bytes(), &entry) == nil && entry.Request.URI == uri && entry.Duration > 0 && entry.Status == 200 {
					_ = f.Close()
					return true
				}
			}
			_ = f.Close()
		}
		time.Sleep(100 * time.Millisecond)
	}
	return false
}

func TestCaddyHandleErrors(t *testing.T) {
	s := startCaddy(t, t.TempDir(), "")
	c := s.client()
	resp, body := call(t, c, "GET", httpErrorsBase+"/hello?name=%zz", "", "Host", "errors.localhost")
	if resp.StatusCode != 400 || body != "styled 400: invalid percent-encoding in parameters" {
		t.Errorf("handle_errors did not restyle: %d %q", resp.StatusCode, body)
	}
	resp, body = call(t, c, "GET", httpErrorsBase+"/logout", "", "Host", "errors.localhost")
	if resp.StatusCode != 405 || resp.Header.Get("Allow") != "POST" || !strings.HasPrefix(body, "styled 405") {
		t.Errorf("405 through handle_errors: %d %q %q", resp.StatusCode, resp.Header.Get("Allow"), body)
	}
}

func TestCaddyLoginFlow(t *testing.T) {
	s := startCaddy(t, t.TempDir(), "session_lifetime 1h")
	c := s.client()

	resp, _ := call(t, c, "GET", httpsBase+"/profile", "", "Accept", "text/html")
	if resp.StatusCode != 303 || resp.Header.Get("Location") != "/login?next=%2Fprofile" {
		t.Fatalf("profile without session: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp, _ := call(t, c, "GET", httpsBase+"/profile", ""); resp.StatusCode != 401 {
		t.Fatalf("profile without session for curl: %d", resp.StatusCode)
	}

	resp, body := call(t, c, "POST", httpsBase+"/login", "username=ada&password=wrong", "Accept", "text/html")
	if resp.StatusCode != 401 || !strings.Contains(body, "Invalid username or password") {
		t.Fatalf("wrong password: %d", resp.StatusCode)
	}
	resp, _ = call(t, c, "POST", httpsBase+"/login", "username=ada&password="+adaPassword+"&next=%2Fprofile")
	if resp.StatusCode != 303 || resp.Header.Get("Location") != "/profile" {
		t.Fatalf("login: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	cookie := resp.Header.Get("Set-Cookie")
	for _, flag := range []string{"__Host-miniapp_session=", "Path=/", "HttpOnly", "Secure", "SameSite=Lax"} {
		if !strings.Contains(cookie, flag) {
			t.Errorf("Set-Cookie %q lacks %s", cookie, flag)
		}
	}
	resp, body = call(t, c, "GET", httpsBase+"/profile", "", "Accept", "application/json")
	if resp.StatusCode != 200 || !strings.Contains(body, `"username":"ada"`) || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("profile: %d %q", resp.StatusCode, body)
	}

	u, _ := url.Parse(httpsBase)
	stolen := c.Jar.Cookies(u)[0]

	// a tampered cookie is no session
	tampered := *stolen
	tampered.Value = stolen.Value[:10] + flipChar(stolen.Value[10]) + stolen.Value[11:]
	if resp, _ := call(t, c, "GET", httpsBase+"/profile", "", "Cookie", tampered.Name+"="+tampered.Value); resp.StatusCode != 401 {
		t.Errorf("tampered cookie: %d", resp.StatusCode)
	}

	// a cross-site logout is refused and the session stays
	if resp, _ := call(t, c, "POST", httpsBase+"/logout", "", "Sec-Fetch-Site", "cross-site"); resp.StatusCode != 403 {
		t.Errorf("cross-site logout: %d", resp.StatusCode)
	}
	resp, _ = call(t, c, "POST", httpsBase+"/logout", "")
	if resp.StatusCode != 303 || resp.Header.Get("Location") != "/login" || !strings.Contains(resp.Header.Get("Set-Cookie"), "Max-Age=0") {
		t.Fatalf("logout: %d %q", resp.StatusCode, resp.Header.Get("Set-Cookie"))
	}
	if resp, _ := call(t, c, "GET", httpsBase+"/profile", "", "Cookie", stolen.Name+"="+stolen.Value); resp.StatusCode != 401 {
		t.Errorf("replayed cookie after logout: %d", resp.StatusCode)
	}

}

func flipChar(c byte) string {
	if c == 'A' {
		return "B"
	}
	return "A"
}

func TestCaddyNextAndCrossSite(t *testing.T) {
	startCaddy(t, t.TempDir(), "")
	s := &site{t: t}
	for next, want := range map[string]string{
		"/docs?page=2":         "/docs?page=2",
		"//evil.example":       "/profile",
		"/\\evil.example":      "/profile",
		"https://evil.example": "/profile",
		"/%2F%2Fevil.example":  "/profile",
		"javascript:alert(1)":  "/profile",
	} {
		c := s.client()
		resp, _ := call(t, c, "POST", httpsBase+"/login?next="+url.QueryEscape(next), "username=ada&password="+adaPassword)
		if resp.StatusCode != 303 || resp.Header.Get("Location") != want {
			t.Errorf("next %q: %d %q, want %q", next, resp.StatusCode, resp.Header.Get("Location"), want)
		}
	}
	c := s.client()
	for _, hdr := range [][]string{{"Sec-Fetch-Site", "cross-site"}, {"Origin", "https://evil.example"}} {
		for _, path := range []string{"/login", "/logout", "/hello"} {
			resp, _ := call(t, c, "POST", httpsBase+path, "username=ada&password="+adaPassword, hdr...)
			if resp.StatusCode != 403 {
				t.Errorf("cross-site POST %s (%v): %d", path, hdr, resp.StatusCode)
			}
		}
	}
}

// TestCaddyRestart stops the HTTP app and starts it again on the same
// storage: the generated key and the revocations come back from storage.
func TestCaddyRestart(t *testing.T) {
	storage := t.TempDir()
	s := startCaddy(t, storage, "")
	c := s.client()
	loggedOut := s.client()
	for _, cl := range []*http.Client{c, loggedOut} {
		if resp, _ := call(t, cl, "POST", httpsBase+"/login", "username=ada&password="+adaPassword); resp.StatusCode != 303 {
			t.Fatalf("login: %d", resp.StatusCode)
		}
	}
	u, _ := url.Parse(httpsBase)
	old := loggedOut.Jar.Cookies(u)[0]
	call(t, loggedOut, "POST", httpsBase+"/logout", "")

	s.tester.InitServer(`{
	admin localhost:2999
}`, "caddyfile")
	if _, err := c.Get(httpsBase + "/hello"); err == nil {
		t.Fatal("Caddy still serving after stop")
	}
	startCaddy(t, storage, "")

	if resp, body := call(t, c, "GET", httpsBase+"/profile", "", "Accept", "application/json"); resp.StatusCode != 200 || !strings.Contains(body, `"ada"`) {
		t.Errorf("session lost across restart: %d %q", resp.StatusCode, body)
	}
	if resp, _ := call(t, loggedOut, "GET", httpsBase+"/profile", "", "Cookie", old.Name+"="+old.Value); resp.StatusCode != 401 {
		t.Errorf("logout undone by restart: %d", resp.StatusCode)
	}
}

// signIn signs user in from a new client with the User-Agent ua, and
// returns the client and the session's ID as the profile shows it.
func (s *site) signIn(user, password, ua string) (*http.Client, string) {
	s.t.Helper()
	c := s.client()
	if resp, _ := call(s.t, c, "POST", httpsBase+"/login", "username="+user+"&password="+password, "User-Agent", ua); resp.StatusCode != 303 {
		s.t.Fatalf("login %s: %d", user, resp.StatusCode)
	}
	p := s.profile(c)
	for _, e := range p.Sessions {
		if e.Current {
			return c, e.ID
		}
	}
	s.t.Fatalf("no current session in %+v", p.Sessions)
	return nil, ""
}

// profile is the client's profile as JSON; a zero one when signed out.
func (s *site) profile(c *http.Client) profileJSON {
	s.t.Helper()
	var p profileJSON
	if resp, body := call(s.t, c, "GET", httpsBase+"/profile", "", "Accept", "application/json"); resp.StatusCode == 200 {
		if err := json.Unmarshal([]byte(body), &p); err != nil {
			s.t.Fatalf("profile %q: %v", body, err)
		}
	}
	return p
}
