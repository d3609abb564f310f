package miniapp

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/guard"
	"github.com/caddy-miniapp/miniapp/internal/session"
	"github.com/caddy-miniapp/miniapp/internal/testhash"
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func TestBadCookies(t *testing.T) {
	a := newApp(t, "", func(h *Handler) { h.SessionLifetime = 0 })
	good := a.login("ada", adaPassword, false)
	raw, _ := base64.RawURLEncoding.DecodeString(good.Value)
	flip := func(i int) string {
		b := append([]byte(nil), raw...)
		b[i] ^= 1
		return base64.RawURLEncoding.EncodeToString(b)
	}
	// the value in the standard alphabet: when no character differs
	// between the two (a few in a hundred values), its padding does
	std := strings.NewReplacer("-", "+", "_", "/").Replace(good.Value)
	if std == good.Value {
		std += "=="
	}
	other := newApp(t, "", func(h *Handler) { h.SecretKeys = []string{base64.StdEncoding.EncodeToString(session.Random(32))} })
	otherCookie := other.login("ada", adaPassword, false)
	for name, value := range map[string]string{
		"empty":        "",
		"garbage":      "not-a-cookie",
		"truncated":    good.Value[:len(good.Value)-4],
		"key id":       flip(0),
		"nonce":        flip(6),
		"ciphertext":   flip(len(raw) - 20),
		"tag":          flip(len(raw) - 1),
		"other key":    otherCookie.Value,
		"padded":       good.Value + "==",
		"huge":         strings.Repeat("A", 5000),
		"only key id":  good.Value[:6],
		"standard b64": std,
	} {
		w := a.do(request{target: "/profile", cookie: &http.Cookie{Name: "miniapp_session", Value: value}})
		if w.Code != 401 {
			t.Errorf("%s cookie: status %d, want 401", name, w.Code)
		}
	}
	if w := a.do(request{target: "/profile", cookie: good}); w.Code != 200 {
		t.Fatalf("good cookie: %d", w.Code)
	}
	// the cookie of the plain-HTTP name is not read over HTTPS
	if w := a.do(request{target: "/profile", cookie: good, https: true}); w.Code != 401 {
		t.Errorf("unprefixed cookie over HTTPS: %d", w.Code)
	}
}

func TestExpiry(t *testing.T) {
	a := newApp(t, "", func(h *Handler) { h.IdleTimeout = caddy.Duration(24 * time.Hour) })
	c := a.login("ada", adaPassword, false)
	a.advance(12*time.Hour - 2*time.Second)
	if w := a.do(request{target: "/profile", cookie: c}); w.Code != 200 {
		t.Fatalf("before expiry: %d", w.Code)
	}
	a.advance(3 * time.Second)
	if w := a.do(request{target: "/profile", cookie: c}); w.Code != 401 {
		t.Fatalf("after expiry: %d", w.Code)
	}
}

func TestNewSessionEachLogin(t *testing.T) {
	a := newApp(t, "", nil)
	c1 := a.login("ada", adaPassword, false)
	c2 := a.login("ada", adaPassword, false)
	s1, _ := a.open(c1.Value)
	s2, _ := a.open(c2.Value)
	if s1 == nil || s2 == nil || s1.ID == s2.ID {
		t.Fatal("two logins share a session ID")
	}
	// a login while signed in also makes a new ID
	w := a.do(request{method: "POST", target: "/login", contentType: form, cookie: c1, body: "username=ada&password=" + adaPassword})
	s3, _ := a.open(sessionCookie(t, w).Value)
	if s3 == nil || s3.ID == s1.ID {
		t.Fatal("login kept the old session ID")
	}
}

func TestRemovedUser(t *testing.T) {
	a := newApp(t, "", nil)
	c := a.login("grace", gracePassword, false)
	b := newApp(t, "", func(h *Handler) { h.Accounts = h.Accounts[:1] })
	if w := b.do(request{target: "/profile", cookie: c}); w.Code != 401 {
		t.Errorf("session of a removed user accepted: %d", w.Code)
	}
}

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

// TestConcurrentSessions hits login, profile and logout from 64
// goroutines against one handler for a few seconds: every profile shows
// its own user, every logout is in force at once (run with -race).
func TestConcurrentSessions(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for seconds")
	}
	// logins queue for the password-check slots; under -race on two
	// cores the queue may be long, and this test is not about it
	var accounts []Account
	for i := range 8 {
		accounts = append(accounts, Account{Username: fmt.Sprintf("user%d", i), Password: adaHash})
	}
	a := newApp(t, "", func(h *Handler) {
		h.Accounts = accounts
		h.slots = guard.NewSlots(1, time.Minute)
		h.LoginLimit = &LoginLimit{Failures: 1 << 20, Window: caddy.Duration(time.Minute)}
	})
	deadline := time.Now().Add(3 * time.Second)
	var rounds atomic.Int64
	var wg sync.WaitGroup
	for g := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			user := fmt.Sprintf("user%d", g%8)
			// a client of its own: one login of a client runs at a time
			ip := nextIP()
			for time.Now().Before(deadline) {
				w := a.do(request{method: "POST", target: "/login", contentType: form, body: "username=" + user + "&password=" + adaPassword, https: g%2 == 0, ip: ip})
				if w.Code != 303 {
					t.Errorf("%s login: %d", user, w.Code)
					return
				}
				c := w.Result().Cookies()[0]
				w = a.do(request{target: "/profile", accept: "application/json", cookie: c, https: g%2 == 0})
				var out struct{ Username string }
				if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil || out.Username != user {
					t.Errorf("%s sees profile %q (%d)", user, out.Username, w.Code)
					return
				}
				if w := a.do(request{method: "POST", target: "/logout", cookie: c, https: g%2 == 0}); w.Code != 303 {
					t.Errorf("%s logout: %d", user, w.Code)
					return
				}
				if w := a.do(request{target: "/profile", cookie: c, https: g%2 == 0}); w.Code != 401 {
					t.Errorf("%s after logout: %d", user, w.Code)
					return
				}
				rounds.Add(1)
			}
		}()
	}
	wg.Wait()
	if rounds.Load() < 64 {
		t.Errorf("only %d rounds in all", rounds.Load())
	}
	t.Logf("%d login-profile-logout rounds", rounds.Load())
}

// TestSessionBoundToAccount refuses a session once its user's password
// hash changes (a config reload), and keeps the other users' sessions.
func TestSessionBoundToAccount(t *testing.T) {
	dir := t.TempDir()
	a := newApp(t, dir, nil)
	ada, grace := a.login("ada", adaPassword, false), a.login("grace", gracePassword, false)
	b := newApp(t, dir, func(h *Handler) {
		h.Accounts = []Account{{Username: "ada", Password: testhash.Bcrypt("new-password")}, {Username: "grace", Password: graceHash}}
	})
	if w := b.do(request{target: "/profile", cookie: ada}); w.Code != 401 {
		t.Errorf("session of the old password hash accepted: %d", w.Code)
	}
	if w := b.do(request{target: "/profile", cookie: grace}); w.Code != 200 {
		t.Errorf("another user's session refused: %d", w.Code)
	}
}

// TestLifetimeLowered applies a lower session_lifetime or idle_timeout
// to sessions issued before the change, whatever their cookie says.
func TestLifetimeLowered(t *testing.T) {
	dir := t.TempDir()
	a := newApp(t, dir, func(h *Handler) { h.IdleTimeout = caddy.Duration(24 * time.Hour) })
	c := a.login("ada", adaPassword, false)
	a.advance(2 * time.Hour)
	shorter := newApp(t, dir, func(h *Handler) {
		h.SessionLifetime, h.IdleTimeout = caddy.Duration(time.Hour), caddy.Duration(24*time.Hour)
		h.clock = a.h.clock
	})
	if w := shorter.do(request{target: "/profile", cookie: c}); w.Code != 401 {
		t.Errorf("session older than the new lifetime accepted: %d", w.Code)
	}
	idle := newApp(t, dir, func(h *Handler) { h.IdleTimeout = caddy.Duration(time.Hour); h.clock = a.h.clock })
	if w := idle.do(request{target: "/profile", cookie: c}); w.Code != 401 {
		t.Errorf("session idle longer than the new idle timeout accepted: %d", w.Code)
	}
	if w := a.do(request{target: "/profile", cookie: c}); w.Code != 200 {
		t.Errorf("session within the old limits refused: %d", w.Code)
	}
}

// TestSecureBehindTrustedProxy names the cookie __Host- and makes it
// Secure when one of Caddy's trusted proxies says the client used HTTPS,
// and ignores the header from any other client.
func TestSecureBehindTrustedProxy(t *testing.T) {
	a := newApp(t, "", nil)
	for _, trusted := range []bool{true, false} {
		r := httptest.NewRequest("POST", "/login", strings.NewReader("username=ada&password="+adaPassword))
		r.Header.Set("Content-Type", form)
		r.Header.Set("X-Forwarded-Proto", "https")
		r = withClientIP(withCaddyContext(r, false), nextIP())
		caddyhttp.SetVar(r.Context(), caddyhttp.TrustedProxyVarKey, trusted)
		w := httptest.NewRecorder()
		if err := a.h.ServeHTTP(w, r, nextHandler); err != nil || w.Code != 303 {
			t.Fatalf("login: %d %v", w.Code, err)
		}
		c := sessionCookie(t, w)
		if secureName := c.Name == "__Host-miniapp_session" && c.Secure; secureName != trusted {
			t.Errorf("trusted proxy %v: cookie %s Secure %v", trusted, c.Name, c.Secure)
		}
	}
}

// TestDeviceCookieIsNoSession: a sibling site of the same host and realm
// whose cookie_name is <name>_device does not take the first site's
// device cookie for a session: the device cookie is sealed for its own
// purpose.
func TestDeviceCookieIsNoSession(t *testing.T) {
	dir := t.TempDir()
	a := newApp(t, dir, nil)
	device := deviceCookie(t, a.do(request{method: "POST", target: "/login", contentType: form, body: "username=ada&password=" + adaPassword}))
	sibling := newApp(t, dir, func(h *Handler) { h.CookieName = "miniapp_session_device" })
	if w := sibling.do(request{target: "/profile", cookie: device}); w.Code != 401 {
		t.Errorf("a device cookie opened as a session on a sibling site: %d", w.Code)
	}
}
