package miniapp

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func TestIdleExpiryAndRenewal(t *testing.T) {
	a := newApp(t, "", func(h *Handler) {
		h.IdleTimeout = caddy.Duration(10 * time.Minute)
		h.SessionLifetime = caddy.Duration(30 * time.Minute)
	})
	c := a.login("ada", adaPassword, false)

	a.advance(4 * time.Minute) // more than half the idle window left
	w := a.do(request{target: "/profile", cookie: c})
	if w.Code != 200 || len(w.Result().Cookies()) != 0 {
		t.Fatalf("early request: %d, %d cookies", w.Code, len(w.Result().Cookies()))
	}

	a.advance(2 * time.Minute) // 6 of 10 minutes used: renew, on any request
	w = a.do(request{target: "/some/static/file", cookie: c})
	if w.Code != 299 {
		t.Fatalf("pass-through: %d", w.Code)
	}
	renewed := sessionCookie(t, w)
	s, err := a.open(renewed.Value)
	old, _ := a.open(c.Value)
	if err != nil || s.ID != old.ID || !s.Expires.Equal(old.Expires) || !s.LastSeen.After(old.LastSeen) {
		t.Fatalf("renewed session %+v from %+v", s, old)
	}
	if renewed.MaxAge > 24*60 || renewed.MaxAge < 23*60 {
		t.Errorf("renewed Max-Age %d goes past the absolute expiry", renewed.MaxAge)
	}

	a.advance(9 * time.Minute) // old cookie idle for 15 minutes, renewed one for 9
	if w := a.do(request{target: "/profile", cookie: c}); w.Code != 401 {
		t.Errorf("idle cookie accepted: %d", w.Code)
	}
	if w := a.do(request{target: "/profile", cookie: renewed}); w.Code != 200 {
		t.Errorf("renewed cookie refused: %d", w.Code)
	}

	// renewals never pass the absolute lifetime
	for i := 0; i < 4; i++ {
		a.advance(6 * time.Minute)
		if w := a.do(request{target: "/profile", cookie: renewed}); w.Code == 200 {
			if cs := w.Result().Cookies(); len(cs) == 1 {
				renewed = cs[0]
			}
		}
	}
	if w := a.do(request{target: "/profile", cookie: renewed}); w.Code != 401 {
		t.Errorf("session outlived its lifetime through renewals: %d", w.Code)
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

func TestSignOutEverywhere(t *testing.T) {
	dir := t.TempDir()
	a := newApp(t, dir, nil)
	phone := a.login("ada", adaPassword, false)
	laptop := a.login("ada", adaPassword, false)
	grace := a.login("grace", gracePassword, false)
	w := a.do(request{method: "POST", target: "/logout", cookie: phone, contentType: form, body: "all=1"})
	if w.Code != 303 {
		t.Fatalf("logout all: %d", w.Code)
	}
	for name, c := range map[string]*http.Cookie{"phone": phone, "laptop": laptop} {
		if w := a.do(request{target: "/profile", cookie: c}); w.Code != 401 {
			t.Errorf("%s session survived sign out everywhere: %d", name, w.Code)
		}
	}
	if w := a.do(request{target: "/profile", cookie: grace}); w.Code != 200 {
		t.Errorf("another user's session ended: %d", w.Code)
	}
	fresh := a.login("ada", adaPassword, false)
	if w := a.do(request{target: "/profile", cookie: fresh}); w.Code != 200 {
		t.Errorf("login after sign out everywhere refused: %d", w.Code)
	}
	// another instance on the same storage, started afterwards
	if err := a.h.Cleanup(); err != nil {
		t.Fatal(err)
	}
	b := newApp(t, dir, nil)
	if w := b.do(request{target: "/profile", cookie: laptop}); w.Code != 401 {
		t.Errorf("sign out everywhere lost on restart: %d", w.Code)
	}
	if w := b.do(request{target: "/profile", cookie: fresh}); w.Code != 200 {
		t.Errorf("fresh session refused after restart: %d", w.Code)
	}
	page := a.do(request{target: "/profile", cookie: fresh, accept: "text/html"}).Body.String()
	if !strings.Contains(page, `name="all" value="1"`) {
		t.Error("the profile page offers no sign out of all devices")
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
	// login and logout set one cookie of their own, never a renewal too
	for _, req := range []request{
		{method: "POST", target: "/login", contentType: form, body: "username=ada&password=" + adaPassword, cookie: c},
		{method: "POST", target: "/logout", cookie: c},
	} {
		if w := a.do(req); len(w.Header().Values("Set-Cookie")) != 1 {
			t.Errorf("%s: Set-Cookie %q", req.target, w.Header().Values("Set-Cookie"))
		}
	}
}

func TestCookieBoundToHost(t *testing.T) {
	a := newApp(t, "", nil)
	c := a.login("ada", adaPassword, false)
	for host, want := range map[string]int{"example.com": 200, "EXAMPLE.com:8080": 200, "other.example": 401} {
		w := a.do(request{target: "/profile", cookie: c, header: map[string]string{"Host": host}})
		if w.Code != want {
			t.Errorf("cookie of example.com at %s: %d, want %d", host, w.Code, want)
		}
	}
}

func TestCookieBoundToName(t *testing.T) {
	a := newApp(t, "", nil)
	plain := a.login("ada", adaPassword, false)
	// a cookie sniffed over plain HTTP, replayed under the __Host- name
	moved := &http.Cookie{Name: "__Host-miniapp_session", Value: plain.Value}
	if w := a.do(request{target: "/profile", cookie: moved, https: true}); w.Code != 401 {
		t.Errorf("HTTP cookie accepted over HTTPS: %d", w.Code)
	}
}
