package miniapp

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/session"
	"github.com/caddy-miniapp/miniapp/internal/testhash"
	"github.com/caddy-miniapp/miniapp/internal/testreq"
	"github.com/caddy-miniapp/miniapp/store"
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// Test accounts: ada has a bcrypt hash, grace an argon2id one, both with
// cheap parameters so the tests run fast.
const (
	adaPassword   = "lovelace-1815"
	gracePassword = "hopper-1906"
)

var (
	adaHash   = testhash.Bcrypt(adaPassword)
	graceHash = testhash.Argon2id(gracePassword)
	testKey   = base64.StdEncoding.EncodeToString(session.Random(32))
)

func testAccounts() []Account {
	return []Account{{Username: "ada", Password: adaHash}, {Username: "grace", Password: graceHash}}
}

// testApp is a provisioned handler on its own storage, with its log and
// the client IP its requests come from: its own, since the throttle's
// counts are shared by every handler of the process with the same limit.
type testApp struct {
	t       testing.TB
	h       *Handler
	logs    *observer.ObservedLogs
	storage certmagic.Storage
	ip      string
}

var appCount atomic.Int64

// nextIP is a client address no other test app uses.
func nextIP() string {
	n := appCount.Add(1)
	return fmt.Sprintf("198.18.%d.%d", n/250, n%250+1)
}

// newApp provisions a handler with the test accounts and key; change
// adjusts the config first. storageDir may be shared between apps.
func newApp(t testing.TB, storageDir string, change func(*Handler)) *testApp {
	t.Helper()
	h := &Handler{Accounts: testAccounts(), SecretKeys: []string{testKey}}
	if change != nil {
		change(h)
	}
	if storageDir == "" {
		storageDir = t.TempDir()
	}
	core, logs := observer.New(zap.DebugLevel)
	storage := &certmagic.FileStorage{Path: storageDir}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := h.provision(ctx, storage, zap.New(core)); err != nil {
		t.Fatalf("provision: %v", err)
	}
	if err := h.Validate(); err != nil {
		t.Fatalf("validate: %v", err)
	}
	t.Cleanup(func() { _ = h.Cleanup() })
	return &testApp{t: t, h: h, logs: logs, storage: storage, ip: nextIP()}
}

// nextHandler stands for file_server: it answers 299 so a test can tell
// that the request was passed on.
var nextHandler = caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
	w.WriteHeader(299)
	return nil
})

// request describes one request to the handler.
type request struct {
	method, target, body, contentType, accept string
	cookie                                    *http.Cookie
	https                                     bool
	// ip is the client address; the app's own when empty
	ip     string
	header map[string]string
}

// do sends the request through ServeHTTP the way Caddy would, with a
// replacer and vars in its context, and returns the recorded response.
// An error the handler returns is turned into its status, as Caddy does.
func (a *testApp) do(req request) *httptest.ResponseRecorder {
	a.t.Helper()
	if req.method == "" {
		req.method = http.MethodGet
	}
	r := httptest.NewRequest(req.method, req.target, strings.NewReader(req.body))
	if req.https {
		r = httptest.NewRequest(req.method, "https://example.com"+req.target, strings.NewReader(req.body))
	}
	if req.contentType != "" {
		r.Header.Set("Content-Type", req.contentType)
	}
	if req.accept != "" {
		r.Header.Set("Accept", req.accept)
	}
	for k, v := range req.header {
		r.Header.Set(k, v)
		if k == "Host" {
			r.Host = v
		}
	}
	if req.cookie != nil {
		r.AddCookie(req.cookie)
	}
	ip := a.ip
	if req.ip != "" {
		ip = req.ip
	}
	r = withClientIP(withCaddyContext(r, false), ip)
	w := httptest.NewRecorder()
	if err := a.h.ServeHTTP(w, r, nextHandler); err != nil {
		a.t.Fatalf("%s %s: handler returned error %v without handle_errors routes", req.method, req.target, err)
	}
	return w
}

// withClientIP sets Caddy's client IP of the request.
func withClientIP(r *http.Request, ip string) *http.Request {
	caddyhttp.SetVar(r.Context(), caddyhttp.ClientIPVarKey, ip)
	return r
}

// withCaddyContext adds what Caddy's server puts in a request context;
// errorRoutes says whether the site has handle_errors routes.
func withCaddyContext(r *http.Request, errorRoutes bool) *http.Request {
	return testreq.Caddy(r, errorRoutes, "192.0.2.7")
}

// login signs in and returns the session cookie.
func (a *testApp) login(user, password string, https bool) *http.Cookie {
	a.t.Helper()
	w := a.do(request{method: "POST", target: "/login", https: https,
		contentType: "application/x-www-form-urlencoded",
		body:        "username=" + user + "&password=" + password})
	if w.Code != http.StatusSeeOther {
		a.t.Fatalf("login %s: status %d, body %q", user, w.Code, w.Body.String())
	}
	return sessionCookie(a.t, w)
}

// sessionCookie is the one session cookie a response sets (a login sets
// a device cookie beside it, and may clear a pending sign-in's).
func sessionCookie(t testing.TB, w *httptest.ResponseRecorder) *http.Cookie {
	t.Helper()
	var sessions []*http.Cookie
	for _, c := range w.Result().Cookies() {
		if !strings.HasSuffix(c.Name, "_device") && !strings.HasSuffix(c.Name, "_pending") {
			sessions = append(sessions, c)
		}
	}
	if len(sessions) != 1 {
		t.Fatalf("want one session Set-Cookie, got %d: %v", len(sessions), w.Header().Values("Set-Cookie"))
	}
	return sessions[0]
}

// advance moves the handler's clock forward.
func (a *testApp) advance(d time.Duration) {
	a.h.clock.Advance(d)
}

// id is the store's ID of the app's account of the name.
func (a *testApp) id(name string) store.AccountID {
	acct, ok := a.h.app.Accounts.Lookup(name)
	if !ok {
		a.t.Fatalf("no user %q", name)
	}
	return store.AccountID(acct.ID)
}

// open opens a cookie value issued by the app over plain HTTP for the
// test requests' host.
func (a *testApp) open(value string) (*session.Session, error) {
	return a.h.app.Keys.Open(session.PurposeSession, value, "miniapp_session", "example.com")
}

// entryOf is a session of acct that started at start and lasts an hour.
func entryOf(acct store.AccountID, start time.Time) store.Entry {
	return store.Entry{ID: [16]byte(session.Random(16)), Account: acct, Counter: 1, Started: start, Expires: start.Add(time.Hour),
		Address: "203.0.113.7", Device: "Firefox on Linux"}
}

// newSession is a session of the named account that begins now, as a
// login would start it, without the login's store write.
func (a *testApp) newSession(name string) *session.Session {
	acct, ok := a.h.app.Accounts.Lookup(name)
	if !ok {
		a.t.Fatalf("no user %q", name)
	}
	counter := a.h.app.Shared.Counter(context.Background(), store.AccountID(acct.ID))
	s := session.New(name, acct.ID.Tag(), counter, a.h.clock.Now(), time.Duration(a.h.SessionLifetime))
	s.Generation = a.h.app.Shared.Generation()
	return s
}

// seal seals a session as a cookie over plain HTTP for the test
// requests' host.
func (a *testApp) seal(s *session.Session) *http.Cookie {
	return &http.Cookie{Name: "miniapp_session", Value: a.h.app.Keys.Seal(session.PurposeSession, s, "miniapp_session", "example.com")}
}
