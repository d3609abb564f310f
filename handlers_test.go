package miniapp

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/caddyauth"
	"go.uber.org/zap/zaptest/observer"
)

const (
	form     = "application/x-www-form-urlencoded"
	jsonType = "application/json"
)

func TestHello(t *testing.T) {
	a := newApp(t, "", nil)
	long := strings.Repeat("a", 257)
	many := strings.Repeat("x=1&", 10001)
	tests := []struct {
		name   string
		req    request
		status int
		ctype  string
		body   string
	}{
		{"name", request{target: "/hello?name=Ada"}, 200, "text/plain; charset=utf-8", "Hello, Ada!"},
		{"no name", request{target: "/hello"}, 200, "text/plain; charset=utf-8", "Hello, World!"},
		{"empty name", request{target: "/hello?name="}, 200, "text/plain; charset=utf-8", "Hello, World!"},
		{"first non-empty wins", request{target: "/hello?name=&name=Bob&name=Eve"}, 200, "", "Hello, Bob!"},
		{"first wins", request{target: "/hello?name=Ada&name=Bob"}, 200, "", "Hello, Ada!"},
		{"escaped", request{target: "/hello?name=Ada+L%C3%B6we"}, 200, "", "Hello, Ada Löwe!"},
		{"exactly 256 bytes", request{target: "/hello?name=" + long[:256]}, 200, "", "Hello, " + long[:256] + "!"},
		{"json accept", request{target: "/hello?name=Ada", accept: "application/json"}, 200, "application/json", `{"message":"Hello, Ada!"}`},
		{"html preferred over json", request{target: "/hello", accept: "text/html, application/json;q=0.5"}, 200, "text/plain; charset=utf-8", "Hello, World!"},
		{"post form", request{method: "POST", target: "/hello", contentType: form, body: "name=Ada"}, 200, "", "Hello, Ada!"},
		{"post form charset", request{method: "POST", target: "/hello", contentType: form + "; charset=utf-8", body: "name=Ada"}, 200, "", "Hello, Ada!"},
		{"query wins over body", request{method: "POST", target: "/hello?name=Q", contentType: form, body: "name=B"}, 200, "", "Hello, Q!"},
		{"empty query yields to body", request{method: "POST", target: "/hello?name=", contentType: form, body: "name=B"}, 200, "", "Hello, B!"},
		{"post json", request{method: "POST", target: "/hello", contentType: jsonType, body: `{"name":"Ada"}`}, 200, "application/json", `{"message":"Hello, Ada!"}`},
		{"post empty no type", request{method: "POST", target: "/hello"}, 200, "", "Hello, World!"},
		{"bad escape", request{target: "/hello?name=%zz"}, 400, "text/plain; charset=utf-8", "invalid percent-encoding in parameters\n"},
		{"bad escape elsewhere", request{target: "/hello?name=Ada&x=%"}, 400, "", "invalid percent-encoding in parameters\n"},
		{"semicolon", request{target: "/hello?name=Ada;x=1"}, 400, "", "invalid semicolon separator in parameters\n"},
		{"too many params", request{target: "/hello?" + many}, 400, "", "too many parameters\n"},
		{"too long", request{target: "/hello?name=" + long}, 400, "", "name is longer than 256 bytes\n"},
		{"invalid utf-8", request{target: "/hello?name=%ff"}, 400, "", "text is not valid UTF-8\n"},
		{"control character", request{target: "/hello?name=a%0d%0aSet-Cookie:x"}, 400, "", "text contains control characters\n"},
		{"nul", request{target: "/hello?name=%00"}, 400, "", "text contains control characters\n"},
		{"bad form body", request{method: "POST", target: "/hello", contentType: form, body: "name=%zz"}, 400, "", "invalid percent-encoding in parameters\n"},
		{"bad json body", request{method: "POST", target: "/hello", contentType: jsonType, body: `{"name":5}`}, 400, "application/json", `{"error":"body is not a JSON object of string fields"}`},
		{"json error as json", request{method: "POST", target: "/hello", contentType: jsonType, accept: "application/json", body: `[`}, 400, "application/json", `{"error":"body is not a JSON object of string fields"}`},
		{"wrong content type", request{method: "POST", target: "/hello", contentType: "text/plain", body: "name=Ada"}, 415, "", "content type must be application/x-www-form-urlencoded or application/json\n"},
		{"body too large", request{method: "POST", target: "/hello", contentType: form, body: "name=" + strings.Repeat("a", 70<<10)}, 413, "", "request body too large\n"},
		{"method", request{method: "PUT", target: "/hello"}, 405, "", "method not allowed\n"},
		{"cross-site post", request{method: "POST", target: "/hello", contentType: form, body: "name=x", header: map[string]string{"Sec-Fetch-Site": "cross-site"}}, 403, "", "cross-origin request refused\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := a.do(tt.req)
			if w.Code != tt.status {
				t.Fatalf("status %d, want %d (body %q)", w.Code, tt.status, w.Body.String())
			}
			if tt.ctype != "" && w.Header().Get("Content-Type") != tt.ctype {
				t.Errorf("Content-Type %q, want %q", w.Header().Get("Content-Type"), tt.ctype)
			}
			if got := w.Body.String(); got != tt.body {
				t.Errorf("body %q, want %q", got, tt.body)
			}
			checkCommonHeaders(t, w)
		})
	}
}

// checkCommonHeaders asserts what every response of the module carries.
func checkCommonHeaders(t *testing.T, w *httptest.ResponseRecorder) {
	t.Helper()
	if w.Header().Get("Content-Type") == "" {
		t.Error("no Content-Type")
	}
	if got, want := w.Header().Get("Content-Length"), strconv.Itoa(w.Body.Len()); got != want {
		t.Errorf("Content-Length %q, body is %s bytes", got, want)
	}
	if w.Header().Get("X-Content-Type-Options") != "nosniff" {
		t.Error("no X-Content-Type-Options: nosniff")
	}
	if !strings.Contains(strings.Join(w.Header().Values("Vary"), ","), "Accept") {
		t.Error("no Vary: Accept")
	}
	if w.Code == 401 && !strings.HasPrefix(w.Header().Get("WWW-Authenticate"), `Cookie realm="miniapp", form-action="/login"`) {
		t.Errorf("401 with WWW-Authenticate %q", w.Header().Get("WWW-Authenticate"))
	}
}

func TestHead(t *testing.T) {
	a := newApp(t, "", nil)
	for _, target := range []string{"/hello?name=Ada", "/login", "/profile"} {
		w := a.do(request{method: "HEAD", target: target, accept: "text/html"})
		get := a.do(request{method: "GET", target: target, accept: "text/html"})
		if w.Code != get.Code || w.Body.Len() != 0 {
			t.Errorf("HEAD %s: status %d (GET %d), body %d bytes", target, w.Code, get.Code, w.Body.Len())
		}
		if w.Header().Get("Content-Length") != get.Header().Get("Content-Length") {
			t.Errorf("HEAD %s: Content-Length %q, GET has %q", target, w.Header().Get("Content-Length"), get.Header().Get("Content-Length"))
		}
	}
}

func TestMethodNotAllowed(t *testing.T) {
	a := newApp(t, "", nil)
	tests := []struct{ method, target, allow string }{
		{"DELETE", "/hello", "GET, HEAD, POST"},
		{"PUT", "/login", "GET, HEAD, POST"},
		{"POST", "/profile", "GET, HEAD"},
		{"GET", "/logout", "POST"},
		{"HEAD", "/logout", "POST"},
	}
	for _, tt := range tests {
		w := a.do(request{method: tt.method, target: tt.target})
		if w.Code != 405 || w.Header().Get("Allow") != tt.allow {
			t.Errorf("%s %s: status %d Allow %q, want 405 %q", tt.method, tt.target, w.Code, w.Header().Get("Allow"), tt.allow)
		}
		if tt.method != "HEAD" {
			checkCommonHeaders(t, w)
		}
	}
}

func TestPassThrough(t *testing.T) {
	a := newApp(t, "", nil)
	for _, target := range []string{"/", "/hello/", "/HELLO", "/hello.txt", "/login/x", "/profile;x", "/index.html?name=%zz"} {
		if w := a.do(request{target: target}); w.Code != 299 {
			t.Errorf("%s: status %d, want it passed to the next handler", target, w.Code)
		}
	}
}

func TestErrorsWithHandleErrors(t *testing.T) {
	a := newApp(t, "", nil)
	r := withCaddyContext(httptest.NewRequest("GET", "/hello?name=%zz", nil), true)
	err := a.h.ServeHTTP(httptest.NewRecorder(), r, nextHandler)
	var he caddyhttp.HandlerError
	if !errors.As(err, &he) || he.StatusCode != 400 {
		t.Fatalf("want a caddyhttp.HandlerError with 400, got %#v", err)
	}

	r = withCaddyContext(httptest.NewRequest("PATCH", "/logout", nil), true)
	w := httptest.NewRecorder()
	err = a.h.ServeHTTP(w, r, nextHandler)
	if !errors.As(err, &he) || he.StatusCode != 405 || w.Header().Get("Allow") != "POST" {
		t.Fatalf("want 405 with Allow: POST, got %#v and Allow %q", err, w.Header().Get("Allow"))
	}
}

func TestErrorFormats(t *testing.T) {
	a := newApp(t, "", nil)
	w := a.do(request{target: "/hello?name=%zz", accept: "text/html"})
	if w.Code != 400 || !strings.Contains(w.Body.String(), "invalid percent-encoding") || w.Header().Get("Content-Type") != "text/html; charset=utf-8" {
		t.Errorf("HTML error: %d %q %q", w.Code, w.Header().Get("Content-Type"), w.Body.String())
	}
	w = a.do(request{target: "/hello?name=%zz", accept: "application/json"})
	var out map[string]string
	if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil || out["error"] == "" {
		t.Errorf("JSON error: %q", w.Body.String())
	}
}

func TestBodyLimit(t *testing.T) {
	a := newApp(t, "", func(h *Handler) { h.MaxBodySize = 10 })
	w := a.do(request{method: "POST", target: "/hello", contentType: form, body: "name=12345"})
	if w.Code != 200 {
		t.Errorf("10 bytes: %d", w.Code)
	}
	w = a.do(request{method: "POST", target: "/hello", contentType: form, body: "name=123456"})
	if w.Code != 413 {
		t.Errorf("11 bytes: %d", w.Code)
	}
}

// TestBodyLimitFromCaddy checks that a 413 raised by Caddy's own
// request_body reader is passed on as 413.
func TestBodyLimitFromCaddy(t *testing.T) {
	a := newApp(t, "", nil)
	r := withCaddyContext(httptest.NewRequest("POST", "/hello", strings.NewReader("name=123456")), false)
	r.Header.Set("Content-Type", form)
	r.ContentLength = -1
	r.Body = errReader{caddyhttp.Error(413, &http.MaxBytesError{Limit: 5})}
	w := httptest.NewRecorder()
	if err := a.h.ServeHTTP(w, r, nextHandler); err != nil || w.Code != 413 {
		t.Fatalf("got %v, %d", err, w.Code)
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }
func (e errReader) Close() error             { return nil }

func TestLoginLogs(t *testing.T) {
	a := newApp(t, "", nil)
	c := a.login("ada", adaPassword, true)
	a.do(request{method: "POST", target: "/login", contentType: form, body: "username=ada&password=wrong-secret-1"})
	a.do(request{method: "POST", target: "/login", contentType: jsonType, body: `{"username":"mallory","password":"wrong-secret-2"}`})
	a.do(request{target: "/profile", cookie: c, https: true})
	a.do(request{method: "POST", target: "/logout", cookie: c, https: true})

	want := []struct{ level, msg, user, reason string }{
		{"info", "login", "ada", ""},
		{"warn", "login failed", "ada", "wrong password"},
		{"warn", "login failed", "mallory", "unknown user"},
		{"info", "logout", "ada", ""},
	}
	entries := a.logs.Filter(func(e observer.LoggedEntry) bool {
		return !strings.HasPrefix(e.Message, "users' password hashes differ")
	}).All()
	if len(entries) != len(want) {
		t.Fatalf("%d log entries, want %d: %v", len(entries), len(want), entries)
	}
	for i, e := range entries {
		fields := e.ContextMap()
		if e.Level.String() != want[i].level || e.Message != want[i].msg || fields["user"] != want[i].user || fields["client_ip"] != a.ip {
			t.Errorf("entry %d: %s %q %v", i, e.Level, e.Message, fields)
		}
		if want[i].reason != "" && fields["reason"] != want[i].reason {
			t.Errorf("entry %d: reason %v, want %q", i, fields["reason"], want[i].reason)
		}
	}
	assertNoSecrets(t, a, c.Value, adaPassword, "wrong-secret-1", "wrong-secret-2", testKey)
}

// assertNoSecrets fails when any log entry, message or field, holds one
// of the secrets.
func assertNoSecrets(t *testing.T, a *testApp, secrets ...string) {
	t.Helper()
	for _, e := range a.logs.All() {
		line, _ := json.Marshal(map[string]any{"msg": e.Message, "fields": e.ContextMap()})
		for _, s := range secrets {
			if strings.Contains(string(line), s) {
				t.Errorf("log entry %s holds a secret", line)
			}
		}
	}
}

func TestInternalError(t *testing.T) {
	a := newApp(t, "", nil)
	r := withCaddyContext(httptest.NewRequest("GET", "/hello", nil), false)
	w := httptest.NewRecorder()
	if err := a.h.internal(w, r, errors.New("disk on fire at /var/secret")); err != nil {
		t.Fatal(err)
	}
	if w.Code != 500 || w.Body.String() != "internal server error\n" {
		t.Errorf("client saw %d %q", w.Code, w.Body.String())
	}
	entries := a.logs.FilterMessage("internal error").All()
	if len(entries) != 1 || !strings.Contains(fmt.Sprint(entries[0].ContextMap()["error"]), "disk on fire") {
		t.Errorf("cause not logged: %v", entries)
	}
	r = withCaddyContext(httptest.NewRequest("GET", "/hello", nil), true)
	err := a.h.internal(httptest.NewRecorder(), r, errors.New("disk on fire"))
	var he caddyhttp.HandlerError
	if !errors.As(err, &he) || he.StatusCode != 500 || strings.Contains(err.Error(), "disk") {
		t.Errorf("with handle_errors: %v", err)
	}
}

func TestCookieName(t *testing.T) {
	a := newApp(t, "", func(h *Handler) { h.CookieName = "sid" })
	for https, want := range map[bool]string{false: "sid", true: "__Host-sid"} {
		c := a.login("ada", adaPassword, https)
		if c.Name != want {
			t.Errorf("cookie %q, want %q", c.Name, want)
		}
		if w := a.do(request{target: "/profile", cookie: c, https: https}); w.Code != 200 {
			t.Errorf("%s refused: %d", want, w.Code)
		}
	}
}

// BenchmarkLogin compares the two failing paths of a login: a wrong
// password for a known user and any password for an unknown one. Their
// ns/op must match (the unknown name is checked against a fake hash of
// the same algorithm and cost), or the timing tells which names exist.
func BenchmarkLogin(b *testing.B) {
	for _, bc := range []struct{ name, hash, user string }{
		{"bcrypt/wrong_password", adaHash, "ada"},
		{"bcrypt/unknown_user", adaHash, "mallory"},
		{"argon2id/wrong_password", graceHash, "grace"},
		{"argon2id/unknown_user", graceHash, "mallory"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			a := newApp(b, "", func(h *Handler) {
				h.Accounts = []caddyauth.Account{{Username: bc.user, Password: bc.hash}}
				if bc.user == "mallory" {
					h.Accounts[0].Username = "someone"
				}
				h.LoginLimit = &LoginLimit{Failures: 1 << 30, Window: caddy.Duration(time.Minute)}
			})
			body := "username=" + bc.user + "&password=wrong"
			b.ResetTimer()
			for b.Loop() {
				if w := a.do(request{method: "POST", target: "/login", contentType: form, body: body}); w.Code != 401 {
					b.Fatalf("status %d", w.Code)
				}
			}
		})
	}
}

// TestErrorStatuses renders each error the module raises as a page for
// browsers, JSON for JSON clients and a line for others.
func TestErrorStatuses(t *testing.T) {
	a := newApp(t, "", func(h *Handler) {
		h.MaxBodySize = 64
		h.LoginLimit = &LoginLimit{Failures: 1, Window: caddy.Duration(time.Minute)}
	})
	a.do(request{method: "POST", target: "/login", contentType: form, body: "username=ada&password=x"})
	for status, req := range map[int]request{
		400: {target: "/hello?name=%zz"},
		401: {target: "/profile"},
		403: {method: "POST", target: "/hello", header: map[string]string{"Sec-Fetch-Site": "cross-site"}},
		405: {method: "PUT", target: "/hello"},
		413: {method: "POST", target: "/hello", contentType: form, body: "name=" + strings.Repeat("a", 80)},
		415: {method: "POST", target: "/hello", contentType: "text/csv", body: "a"},
		429: {method: "POST", target: "/login", contentType: form, body: "username=ada&password=" + adaPassword},
	} {
		html := req
		html.accept = "text/html"
		if w := a.do(html); status == 401 {
			if w.Code != 303 { // a browser is sent to the login page instead
				t.Errorf("401 as HTML: %d", w.Code)
			}
		} else if w.Code != status || !strings.Contains(w.Body.String(), "<h1>") || w.Header().Get("Content-Type") != textHTML {
			t.Errorf("%d as HTML: %d %q", status, w.Code, w.Header().Get("Content-Type"))
		}
		js := req
		js.accept = "application/json"
		w := a.do(js)
		var out map[string]string
		if w.Code != status || json.Unmarshal(w.Body.Bytes(), &out) != nil || out["error"] == "" {
			t.Errorf("%d as JSON: %d %q", status, w.Code, w.Body.String())
		}
		if w := a.do(req); w.Code != status || w.Header().Get("Content-Type") != textPlain || strings.Count(w.Body.String(), "\n") != 1 {
			t.Errorf("%d as text: %d %q", status, w.Code, w.Body.String())
		}
	}
}
