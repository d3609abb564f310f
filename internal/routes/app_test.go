package routes

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/account"
	"github.com/caddy-miniapp/miniapp/internal/gate"
	"github.com/caddy-miniapp/miniapp/internal/guard"
	"github.com/caddy-miniapp/miniapp/internal/session"
	"github.com/caddy-miniapp/miniapp/internal/testhash"
	"github.com/caddy-miniapp/miniapp/internal/testreq"
	"github.com/caddy-miniapp/miniapp/internal/users"
	"github.com/caddy-miniapp/miniapp/internal/web"
	"github.com/caddy-miniapp/miniapp/store/storage"
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

const adaPassword = "lovelace-1815"

var (
	adaHash = testhash.Bcrypt(adaPassword)
	testKey = base64.StdEncoding.EncodeToString(session.Random(32))
	// realms keeps each test's realm apart: the login throttle's counts
	// are per realm across the process
	realms atomic.Int64
)

// counts records the realm's events as the metrics would count them.
type counts struct {
	mu     sync.Mutex
	events []string
}

func (c *counts) add(e string) { c.mu.Lock(); c.events = append(c.events, e); c.mu.Unlock() }

func (c *counts) Login(result string)                { c.add("login " + result) }
func (c *counts) SecondFactor(result, reason string) { c.add("second factor " + result + " " + reason) }
func (c *counts) Logout()                            { c.add("logout") }

// has reports whether event was counted.
func (c *counts) has(event string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.events {
		if e == event {
			return true
		}
	}
	return false
}

// tester is an App made by New on its own storage, with its log and
// counts.
type tester struct {
	t      *testing.T
	a      *App
	logs   *observer.ObservedLogs
	counts *counts
}

// testConfig is a realm of one user, ada, with its own storage.
func testConfig(t *testing.T) Config {
	return Config{Realm: fmt.Sprintf("routes-%d", realms.Add(1)), Accounts: []account.Config{{Username: "ada", Password: adaHash, Groups: []string{"staff"}}},
		SecretKeys: []string{testKey}, CookieName: "miniapp_session", Lifetime: 12 * time.Hour, Idle: time.Hour, Sync: time.Second,
		MaxBody: 64 << 10, Failures: 5, Window: time.Minute, Passkeys: true, PasswordHash: users.Argon2id,
		Store: storage.New(&certmagic.FileStorage{Path: t.TempDir()}), Clock: new(session.Clock), Slots: guard.NewSlots(2, 10*time.Second)}
}

// newTester makes the App of testConfig, changed by change.
func newTester(t *testing.T, change func(*Config)) *tester {
	t.Helper()
	c := testConfig(t)
	core, logs := observer.New(zap.DebugLevel)
	x := &tester{t: t, logs: logs, counts: new(counts)}
	c.Logger, c.Count = zap.New(core), x.counts
	if change != nil {
		change(&c)
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	a, err := New(ctx, c)
	t.Cleanup(func() { a.Close() })
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	x.a = a
	return x
}

// call is one request to a route: method, target, a form body, the
// cookie, and headers as name, value pairs.
type call struct {
	method, target, form string
	cookie               *http.Cookie
	header               []string
}

// serve sends c to route the way the root's ServeHTTP does: the request
// read once, its session opened, an error answered by Fail.
func (x *tester) serve(route func(*App, http.ResponseWriter, *http.Request, web.Request, *gate.Session) error, c call) *httptest.ResponseRecorder {
	x.t.Helper()
	r := httptest.NewRequest(c.method, c.target, strings.NewReader(c.form))
	if c.form != "" {
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for i := 0; i+1 < len(c.header); i += 2 {
		r.Header.Set(c.header[i], c.header[i+1])
	}
	if c.cookie != nil {
		r.AddCookie(c.cookie)
	}
	r = testreq.Caddy(r, false, "203.0.113.9")
	w := httptest.NewRecorder()
	sess, _ := x.a.Gate.Open(WireOf(r), false)
	in := web.Read(r)
	if err := route(x.a, w, r, in, sess); err != nil {
		if err := x.a.Fail(w, r, in.Format, err); err != nil {
			x.t.Fatalf("%s %s: %v", c.method, c.target, err)
		}
	}
	return w
}

// login signs ada in and returns the session cookie.
func (x *tester) login() *http.Cookie {
	x.t.Helper()
	return x.loginAt("")
}

// loginAt signs ada in on the site at base (a scheme and host, or
// empty) and returns the session cookie.
func (x *tester) loginAt(base string) *http.Cookie {
	x.t.Helper()
	w := x.serve((*App).Login, call{method: "POST", target: base + "/login", form: "username=ada&password=" + adaPassword})
	if w.Code != http.StatusSeeOther {
		x.t.Fatalf("login: %d %s", w.Code, w.Body)
	}
	for _, c := range w.Result().Cookies() {
		if strings.HasSuffix(c.Name, "miniapp_session") && c.Value != "" {
			return c
		}
	}
	x.t.Fatalf("login set no session cookie: %v", w.Header().Values("Set-Cookie"))
	return nil
}

func TestNew(t *testing.T) {
	x := newTester(t, func(c *Config) { c.Passkeys = false })
	if x.a.Passkeys != nil || x.a.Provider != nil || x.a.IdP != nil {
		t.Errorf("passkeys off, no oidc, no sign_in_with: want no such services, got %v %v %v", x.a.Passkeys, x.a.Provider, x.a.IdP)
	}
	if _, ok := x.a.Accounts.Lookup("ada"); !ok || x.a.Users == nil || x.a.SignIn.Users == nil {
		t.Error("the Caddyfile's user and the managed accounts are not wired")
	}
	if x.a.guard.Throttle == nil || x.a.guard.Slots == nil {
		t.Error("the login guard is not wired")
	}
	on := newTester(t, nil)
	if on.a.Passkeys == nil || on.a.SignIn.Passkeys != on.a.Passkeys || on.a.Passkeys.Managed == nil {
		t.Error("passkeys on: the service is not wired to sign-in and the managed accounts")
	}
}

func TestNewRefuses(t *testing.T) {
	for name, change := range map[string]func(*Config){
		"a public suffix as cookie_domain": func(c *Config) { c.CookieDomain, c.LoginURL = "com", "https://login.com/login" },
		"a bad secret key":                 func(c *Config) { c.SecretKeys = []string{"short"} },
		"a user without a hash or a link":  func(c *Config) { c.Accounts = []account.Config{{Username: "ada"}} },
	} {
		c := testConfig(t)
		c.Logger, c.Count = zap.NewNop(), new(counts)
		change(&c)
		ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
		a, err := New(ctx, c)
		if err == nil {
			t.Errorf("%s: New made an App", name)
		}
		// what New made before it failed is released
		for _, err := range a.Close() {
			if err != nil {
				t.Errorf("%s: Close: %v", name, err)
			}
		}
		cancel()
	}
}

func TestWireOf(t *testing.T) {
	r := httptest.NewRequest("GET", "https://Example.COM:8443/profile", nil)
	r.Header.Add("Cookie", "a=1")
	r.Header.Add("Cookie", "b=2")
	w := WireOf(r)
	if !w.Secure || w.Host != "example.com" || len(w.Cookies) != 2 {
		t.Errorf("WireOf = %+v, want secure, host example.com, both cookie headers", w)
	}
}

func TestSameOrigin(t *testing.T) {
	x := newTester(t, nil)
	w := x.serve((*App).Hello, call{method: "POST", target: "/hello", form: "name=Ada", header: []string{"Sec-Fetch-Site", "cross-site"}})
	if w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), "cross-origin") {
		t.Errorf("a cross-site POST: %d %q, want 403 cross-origin", w.Code, w.Body)
	}
	w = x.serve((*App).Hello, call{method: "POST", target: "/hello", form: "name=Ada", header: []string{"Sec-Fetch-Site", "same-origin"}})
	if w.Code != http.StatusOK || w.Body.String() != "Hello, Ada!" {
		t.Errorf("a same-origin POST: %d %q", w.Code, w.Body)
	}
}

func TestSignInFirst(t *testing.T) {
	x := newTester(t, nil)
	w := x.serve((*App).SignInFirst, call{method: "GET", target: "/private/a?b=c", header: []string{"Accept", "text/html"}})
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/login?next=%2Fprivate%2Fa%3Fb%3Dc" {
		t.Errorf("a browser: %d to %q, want 303 to the login page with next", w.Code, w.Header().Get("Location"))
	}
	w = x.serve((*App).SignInFirst, call{method: "GET", target: "/private/a", header: []string{"Accept", "application/json"}})
	want := `Cookie realm="` + x.a.realm + `", form-action="/login", cookie-name="miniapp_session"`
	if w.Code != http.StatusUnauthorized || w.Header().Get("WWW-Authenticate") != want {
		t.Errorf("another client: %d with %q, want 401 with %q", w.Code, w.Header().Get("WWW-Authenticate"), want)
	}
}
