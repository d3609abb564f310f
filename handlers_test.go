package miniapp

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
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

func TestLoginLogs(t *testing.T) {
	a := newApp(t, "", nil)
	c := a.login("ada", adaPassword, true)
	a.do(request{method: "POST", target: "/login", contentType: form, body: "username=ada&password=wrong-secret-1"})
	// a password typed into the name field is not logged
	a.do(request{method: "POST", target: "/login", contentType: jsonType, body: `{"username":"wrong-secret-3","password":"wrong-secret-2"}`})
	a.do(request{target: "/profile", cookie: c, https: true})
	a.do(request{method: "POST", target: "/logout", cookie: c, https: true})

	want := []struct{ level, msg, user, reason string }{
		{"info", "login", "ada", ""},
		{"warn", "login failed", "ada", "wrong password"},
		{"warn", "login failed", "unknown user", "unknown user"},
		{"info", "logout", "ada", ""},
	}
	entries := a.logs.Filter(func(e observer.LoggedEntry) bool {
		return !strings.HasPrefix(e.Message, "users' password hashes differ") && !strings.HasPrefix(e.Message, "the realm has no generation")
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
	if length := entries[2].ContextMap()["user_length"]; length != int64(len("wrong-secret-3")) {
		t.Errorf("the unknown name's length: %v", length)
	}
	assertNoSecrets(t, a, c.Value, adaPassword, "wrong-secret-1", "wrong-secret-2", "wrong-secret-3", testKey)
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

func TestLoginPage(t *testing.T) {
	a := newApp(t, "", nil)
	w := a.do(request{target: "/login?next=/docs/a%3Fb", accept: "text/html"})
	body := w.Body.String()
	for _, want := range []string{`name="username"`, `name="password"`, `autocomplete="current-password"`, `name="next" value="/docs/a?b"`, `action="/login"`} {
		if !strings.Contains(body, want) {
			t.Errorf("login page lacks %s", want)
		}
	}
	if w.Code != 200 || w.Header().Get("Content-Security-Policy") == "" {
		t.Errorf("status %d CSP %q", w.Code, w.Header().Get("Content-Security-Policy"))
	}
	for _, next := range []string{"//evil.example", "/\\evil.example", "https://evil.example", `/"><script>`} {
		w := a.do(request{target: "/login?next=" + url.QueryEscape(next)})
		if strings.Contains(w.Body.String(), "evil") || strings.Contains(w.Body.String(), "<script>") {
			t.Errorf("next %q reached the page", next)
		}
	}
}

func TestLoginSuccess(t *testing.T) {
	a := newApp(t, "", nil)
	tests := []struct {
		name, target, body string
		https              bool
		location           string
	}{
		{"default", "/login", "username=ada&password=" + adaPassword, false, "/profile"},
		{"next in form", "/login", "username=ada&password=" + adaPassword + "&next=%2Fdocs%2Fa%3Fb%3D1", false, "/docs/a?b=1"},
		{"next in query", "/login?next=/docs", "username=ada&password=" + adaPassword, false, "/docs"},
		{"argon2id user", "/login", "username=grace&password=" + gracePassword, true, "/profile"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := a.do(request{method: "POST", target: tt.target, contentType: form, body: tt.body, https: tt.https})
			if w.Code != 303 || w.Header().Get("Location") != tt.location {
				t.Fatalf("status %d Location %q, want 303 %q", w.Code, w.Header().Get("Location"), tt.location)
			}
			if w.Header().Get("Cache-Control") != "no-store" {
				t.Error("no Cache-Control: no-store")
			}
			checkCommonHeaders(t, w)
			c := sessionCookie(t, w)
			wantName := "miniapp_session"
			if tt.https {
				wantName = "__Host-miniapp_session"
			}
			if c.Name != wantName || c.Path != "/" || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Secure != tt.https {
				t.Errorf("cookie flags: %+v", c)
			}
			if c.MaxAge < int((12*time.Hour).Seconds())-5 || c.MaxAge > int((12*time.Hour).Seconds()) {
				t.Errorf("Max-Age %d, want the session lifetime", c.MaxAge)
			}
		})
	}
}

func TestLoginJSON(t *testing.T) {
	a := newApp(t, "", nil)
	w := a.do(request{method: "POST", target: "/login", contentType: jsonType, body: `{"username":"ada","password":"` + adaPassword + `"}`})
	if w.Code != 200 || w.Body.String() != `{"username":"ada"}` || w.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("status %d body %q", w.Code, w.Body.String())
	}
	sessionCookie(t, w)
}

func TestLoginFailure(t *testing.T) {
	a := newApp(t, "", func(h *Handler) { h.LoginLimit = &LoginLimit{Failures: 100, Window: caddy.Duration(time.Minute)} })
	const msg = "invalid username or password"
	tests := []struct {
		name, ctype, accept, body string
		status                    int
		want                      string
	}{
		// a page's message is a sentence
		{"wrong password html", form, "text/html", "username=ada&password=nope", 401, "Invalid username or password"},
		{"unknown user html", form, "text/html", "username=mallory&password=nope", 401, "Invalid username or password"},
		{"wrong password text", form, "", "username=ada&password=nope", 401, msg + "\n"},
		{"unknown user text", form, "", "username=mallory&password=nope", 401, msg + "\n"},
		{"wrong password json", jsonType, "", `{"username":"ada","password":"nope"}`, 401, `{"error":"` + msg + `"}`},
		{"unknown user json", jsonType, "", `{"username":"mallory","password":"nope"}`, 401, `{"error":"` + msg + `"}`},
		{"other user's password", form, "", "username=grace&password=" + adaPassword, 401, msg + "\n"},
		{"missing password", form, "", "username=ada", 400, "username and password are required\n"},
		{"missing username", form, "", "password=x", 400, "username and password are required\n"},
		{"empty body", form, "", "", 400, "username and password are required\n"},
		{"no body at all", "", "", "", 400, "username and password are required\n"},
		{"json missing", jsonType, "", `{}`, 400, `{"error":"username and password are required"}`},
		{"json not object", jsonType, "", `"x"`, 400, `{"error":"body is not a JSON object of string fields"}`},
		{"control in username", form, "", "username=a%0ab&password=x", 400, "text contains control characters\n"},
		{"password too long", form, "", "username=ada&password=" + strings.Repeat("x", 1025), 400, "username or password is too long\n"},
		{"wrong type", "text/plain", "", "username=ada", 415, "content type must be application/x-www-form-urlencoded or application/json\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := a.do(request{method: "POST", target: "/login", contentType: tt.ctype, accept: tt.accept, body: tt.body})
			if w.Code != tt.status {
				t.Fatalf("status %d, want %d (%q)", w.Code, tt.status, w.Body.String())
			}
			if tt.accept == "text/html" {
				body := w.Body.String()
				if !strings.Contains(body, tt.want) || !strings.Contains(body, `name="password"`) || !strings.Contains(body, `role="alert"`) {
					t.Errorf("form not shown again with the error: %q", body)
				}
			} else if w.Body.String() != tt.want {
				t.Errorf("body %q, want %q", w.Body.String(), tt.want)
			}
			if len(w.Result().Cookies()) != 0 {
				t.Error("a failed login set a cookie")
			}
			checkCommonHeaders(t, w)
		})
	}
}

func TestLoginCrossSite(t *testing.T) {
	a := newApp(t, "", nil)
	for _, hdr := range []map[string]string{
		{"Sec-Fetch-Site": "cross-site"},
		{"Origin": "https://evil.example"},
	} {
		w := a.do(request{method: "POST", target: "/login", contentType: form, https: true,
			body: "username=ada&password=" + adaPassword, header: hdr})
		if w.Code != 403 || len(w.Result().Cookies()) != 0 {
			t.Errorf("%v: status %d", hdr, w.Code)
		}
	}
	w := a.do(request{method: "POST", target: "/login", contentType: form, https: true,
		body: "username=ada&password=" + adaPassword, header: map[string]string{"Sec-Fetch-Site": "same-origin"}})
	if w.Code != 303 {
		t.Errorf("same-origin login: %d", w.Code)
	}
}

func TestProfile(t *testing.T) {
	a := newApp(t, "", nil)
	c := a.login("ada", adaPassword, true)
	w := a.do(request{target: "/profile", cookie: c, https: true, accept: "text/html"})
	if w.Code != 200 || !strings.Contains(w.Body.String(), "ada") || w.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("profile: %d %q", w.Code, w.Body.String())
	}
	w = a.do(request{target: "/profile", cookie: c, https: true, accept: "application/json"})
	var out struct {
		Username        string
		Issued, Expires time.Time
	}
	if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil || out.Username != "ada" || out.Expires.Sub(out.Issued) != 12*time.Hour {
		t.Fatalf("profile JSON %q: %+v %v", w.Body.String(), out, err)
	}
	if w.Header().Get("Cache-Control") != "no-store" {
		t.Error("JSON profile without no-store")
	}
}

func TestProfileWithoutSession(t *testing.T) {
	a := newApp(t, "", nil)
	tests := []struct {
		accept, location, body string
		status                 int
	}{
		{"text/html,application/xhtml+xml,*/*;q=0.8", "/login?next=%2Fprofile", "", 303},
		{"application/json", "", `{"error":"sign in required"}`, 401},
		{"*/*", "", "sign in required\n", 401},
		{"", "", "sign in required\n", 401},
	}
	for _, tt := range tests {
		w := a.do(request{target: "/profile", accept: tt.accept})
		if w.Code != tt.status || w.Header().Get("Location") != tt.location || (tt.body != "" && w.Body.String() != tt.body) {
			t.Errorf("Accept %q: %d Location %q body %q", tt.accept, w.Code, w.Header().Get("Location"), w.Body.String())
		}
		checkCommonHeaders(t, w)
	}
}

func TestLogout(t *testing.T) {
	dir := t.TempDir()
	a := newApp(t, dir, nil)
	for _, https := range []bool{false, true} {
		c := a.login("ada", adaPassword, https)
		w := a.do(request{method: "POST", target: "/logout", cookie: c, https: https})
		if w.Code != 303 || w.Header().Get("Location") != "/login" {
			t.Fatalf("logout: %d %q", w.Code, w.Header().Get("Location"))
		}
		cleared := sessionCookie(t, w)
		if cleared.Name != c.Name || cleared.Path != "/" || cleared.Secure != https || cleared.MaxAge != -1 || cleared.Value != "" {
			t.Errorf("clearing cookie %+v does not match %+v", cleared, c)
		}
		checkCommonHeaders(t, w)
		if !strings.Contains(w.Header().Get("Set-Cookie"), "Max-Age=0") {
			t.Errorf("Set-Cookie %q lacks Max-Age=0", w.Header().Get("Set-Cookie"))
		}
		if w := a.do(request{target: "/profile", cookie: c, https: https}); w.Code != 401 {
			t.Errorf("replayed cookie after logout: %d", w.Code)
		}
	}
	c := a.login("ada", adaPassword, false)
	a.do(request{method: "POST", target: "/logout", cookie: c})

	// a restart: the old handler goes, a new one reads the same storage
	if err := a.h.Cleanup(); err != nil {
		t.Fatal(err)
	}
	b := newApp(t, dir, nil)
	if w := b.do(request{target: "/profile", cookie: c}); w.Code != 401 {
		t.Errorf("replay after restart: %d", w.Code)
	}
	fresh := b.login("ada", adaPassword, false)
	if w := b.do(request{target: "/profile", cookie: fresh}); w.Code != 200 {
		t.Errorf("new login after restart: %d", w.Code)
	}
}

func TestLogoutCrossSite(t *testing.T) {
	a := newApp(t, "", nil)
	c := a.login("ada", adaPassword, false)
	w := a.do(request{method: "POST", target: "/logout", cookie: c, header: map[string]string{"Sec-Fetch-Site": "cross-site"}})
	if w.Code != 403 {
		t.Fatalf("cross-site logout: %d", w.Code)
	}
	if w := a.do(request{target: "/profile", cookie: c}); w.Code != 200 {
		t.Errorf("refused logout ended the session: %d", w.Code)
	}
}

func TestUserPlaceholder(t *testing.T) {
	a := newApp(t, "", nil)
	c := a.login("ada", adaPassword, false)
	for _, tt := range []struct {
		cookie       *http.Cookie
		user, authID string
	}{
		{c, "ada", "ada"},
		{nil, "", "set-by-basic-auth"},
		{&http.Cookie{Name: "miniapp_session", Value: "forged"}, "", "set-by-basic-auth"},
	} {
		r := withCaddyContext(httptest.NewRequest("GET", "/anything", nil), false)
		r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer).Set("http.auth.user.id", "set-by-basic-auth")
		if tt.cookie != nil {
			r.AddCookie(tt.cookie)
		}
		var user, authID any
		next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
			repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
			user, _ = repl.Get("http.miniapp.user")
			authID, _ = repl.Get("http.auth.user.id")
			return nil
		})
		if err := a.h.ServeHTTP(httptest.NewRecorder(), r, next); err != nil {
			t.Fatal(err)
		}
		if user != tt.user || authID != tt.authID {
			t.Errorf("placeholders %q / %q, want %q / %q", user, authID, tt.user, tt.authID)
		}
	}
}

// TestPlaceholdersNested: with a second handler of another realm in the
// first one's routes, the placeholders show the session the second one
// checked, or nobody when it found none.
func TestPlaceholdersNested(t *testing.T) {
	outer := newApp(t, "", nil)
	inner := newApp(t, "", func(h *Handler) { h.Realm, h.CookieName = "admin", "admin_session" })
	ada, grace := outer.login("ada", adaPassword, false), inner.login("grace", gracePassword, false)
	for _, tt := range []struct {
		cookies               []*http.Cookie
		user, factors, authID string
	}{
		{[]*http.Cookie{ada, grace}, "grace", "1", "grace"},
		{[]*http.Cookie{ada}, "", "", "ada"},
		{[]*http.Cookie{grace}, "grace", "1", "grace"},
		{nil, "", "", ""},
	} {
		r := withClientIP(withCaddyContext(httptest.NewRequest("GET", "/anything", nil), false), outer.ip)
		for _, c := range tt.cookies {
			r.AddCookie(c)
		}
		got := map[string]any{}
		read := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
			repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
			for _, key := range []string{"http.miniapp.user", "http.miniapp.factors", "http.auth.user.id"} {
				got[key], _ = repl.GetString(key)
			}
			return nil
		})
		next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error { return inner.h.ServeHTTP(w, r, read) })
		if err := outer.h.ServeHTTP(httptest.NewRecorder(), r, next); err != nil {
			t.Fatal(err)
		}
		if got["http.miniapp.user"] != tt.user || got["http.miniapp.factors"] != tt.factors || got["http.auth.user.id"] != tt.authID {
			t.Errorf("cookies %d: placeholders %v, want user %q, factors %q, user_id %q", len(tt.cookies), got, tt.user, tt.factors, tt.authID)
		}
	}
}

func TestProtect(t *testing.T) {
	a := newApp(t, "", func(h *Handler) { h.Protect = []string{"/private/*", "/report.pdf"} })
	c := a.login("ada", adaPassword, false)
	tests := []struct {
		target, accept string
		cookie         *http.Cookie
		status         int
		location       string
	}{
		{"/private/a.txt", "text/html", nil, 303, "/login?next=%2Fprivate%2Fa.txt"},
		{"/private/a.txt?x=1", "text/html", nil, 303, "/login?next=%2Fprivate%2Fa.txt%3Fx%3D1"},
		{"/PRIVATE/a.txt", "", nil, 401, ""},
		{"/private/../private/a.txt", "", nil, 401, ""},
		{"/private%2fa.txt", "", nil, 401, ""},
		{"/report.pdf", "application/json", nil, 401, ""},
		{"/public.txt", "", nil, 299, ""},
		{"/private/a.txt", "", c, 299, ""},
		{"/report.pdf", "", c, 299, ""},
		{"/hello", "", nil, 200, ""},
	}
	for _, tt := range tests {
		w := a.do(request{target: tt.target, accept: tt.accept, cookie: tt.cookie})
		if w.Code != tt.status || w.Header().Get("Location") != tt.location {
			t.Errorf("%s: %d %q, want %d %q", tt.target, w.Code, w.Header().Get("Location"), tt.status, tt.location)
		}
	}
	// the next round trip: the login form sends the browser back
	w := a.do(request{method: "POST", target: "/login?next=%2Fprivate%2Fa.txt%3Fx%3D1", contentType: form, body: "username=ada&password=" + adaPassword})
	if w.Header().Get("Location") != "/private/a.txt?x=1" {
		t.Errorf("after login: %q", w.Header().Get("Location"))
	}
}

func TestCacheHeaders(t *testing.T) {
	a := newApp(t, "", func(h *Handler) { h.Protect = []string{"/private/*"} })
	c := a.login("ada", adaPassword, false)
	w := a.do(request{target: "/private/a.txt", cookie: c})
	if w.Code != 299 || w.Header().Get("Cache-Control") != "private" || w.Header().Get("Vary") != "Cookie" {
		t.Errorf("protected content: %d Cache-Control %q Vary %q", w.Code, w.Header().Get("Cache-Control"), w.Header().Get("Vary"))
	}
	if w := a.do(request{target: "/public.txt", cookie: c}); w.Header().Get("Cache-Control") != "" {
		t.Errorf("unprotected content marked %q", w.Header().Get("Cache-Control"))
	}
	a.advance(31 * time.Minute) // past half the idle window: the cookie is renewed
	w = a.do(request{target: "/public.txt", cookie: c})
	if len(w.Result().Cookies()) != 1 || w.Header().Get("Cache-Control") != "no-store" {
		t.Errorf("renewed cookie with Cache-Control %q", w.Header().Get("Cache-Control"))
	}
	// login and logout set a session cookie of their own, never a
	// renewal too (login adds the device cookie)
	for _, tt := range []struct {
		req  request
		want int
	}{
		{request{method: "POST", target: "/login", contentType: form, body: "username=ada&password=" + adaPassword, cookie: c}, 2},
		{request{method: "POST", target: "/logout", cookie: c}, 1},
	} {
		if w := a.do(tt.req); len(w.Header().Values("Set-Cookie")) != tt.want {
			t.Errorf("%s: Set-Cookie %q", tt.req.target, w.Header().Values("Set-Cookie"))
		}
	}
}

// TestRenewedProtectedNoStore: protected content that carries a renewed
// session cookie is no-store, not merely private.
func TestRenewedProtectedNoStore(t *testing.T) {
	a := newApp(t, "", func(h *Handler) { h.Protect = []string{"/private/*"}; h.IdleTimeout = caddy.Duration(time.Hour) })
	c := a.login("ada", adaPassword, false)
	if w := a.do(request{target: "/private/a", cookie: c}); w.Header().Get("Cache-Control") != "private" {
		t.Errorf("protected content: Cache-Control %q", w.Header().Get("Cache-Control"))
	}
	a.advance(31 * time.Minute)
	w := a.do(request{target: "/private/a", cookie: c})
	if len(w.Result().Cookies()) != 1 || w.Header().Get("Cache-Control") != "no-store" {
		t.Errorf("renewed cookie on protected content: Cache-Control %q, %d cookies", w.Header().Get("Cache-Control"), len(w.Result().Cookies()))
	}
}

// TestProfilePlaceholders: the signed-in user's groups, email and name
// are placeholders beside the user, empty for an anonymous request.
func TestProfilePlaceholders(t *testing.T) {
	a := newApp(t, "", func(h *Handler) {
		h.Accounts = []Account{{Username: "ada", Password: adaHash, Groups: []string{"admins", "staff"}, Email: "ada@example.com", Name: "Ada Lovelace"}}
	})
	c := a.login("ada", adaPassword, false)
	for cookie, want := range map[*http.Cookie]string{c: "ada|admins,staff|ada@example.com|Ada Lovelace", nil: "|||"} {
		r := withCaddyContext(httptest.NewRequest("GET", "/anything", nil), false)
		if cookie != nil {
			r.AddCookie(cookie)
		}
		var got string
		next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
			got = r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer).ReplaceAll("{http.miniapp.user}|{http.miniapp.groups}|{http.miniapp.email}|{http.miniapp.name}", "")
			return nil
		})
		if err := a.h.ServeHTTP(httptest.NewRecorder(), r, next); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("placeholders %q, want %q", got, want)
		}
	}
}
