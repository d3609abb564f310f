package miniapp

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/caddyauth"
)

// deviceCookie is the device cookie a login response sets.
func deviceCookie(t *testing.T, w *httptest.ResponseRecorder) *http.Cookie {
	t.Helper()
	for _, c := range w.Result().Cookies() {
		if strings.HasSuffix(c.Name, "_device") {
			return c
		}
	}
	t.Fatalf("no device cookie in %q", w.Header().Values("Set-Cookie"))
	return nil
}

// TestDeviceCookieSet: a successful login remembers the browser for 90
// days in a cookie of its own, HttpOnly and SameSite=Strict, __Host-
// and Secure over HTTPS; a failed login sets none.
func TestDeviceCookieSet(t *testing.T) {
	a := newApp(t, "", nil)
	for _, https := range []bool{false, true} {
		w := a.do(request{method: "POST", target: "/login", contentType: form, body: "username=ada&password=" + adaPassword, https: https})
		d := deviceCookie(t, w)
		want := "miniapp_session_device"
		if https {
			want = "__Host-" + want
		}
		if d.Name != want || d.Secure != https || !d.HttpOnly || d.SameSite != http.SameSiteStrictMode || d.MaxAge != 90*24*3600 || d.Path != "/" {
			t.Errorf("https %v: device cookie %+v", https, d)
		}
	}
	w := a.do(request{method: "POST", target: "/login", contentType: form, body: "username=ada&password=wrong"})
	if len(w.Result().Cookies()) != 0 {
		t.Errorf("failed login set %q", w.Header().Values("Set-Cookie"))
	}
}

// TestKnownDevice: a browser that signed in before keeps signing in
// while its address is throttled, under a failure limit of its own; a
// device cookie of another user, or of a changed password hash, or a
// session cookie in its place, counts for nothing.
func TestKnownDevice(t *testing.T) {
	dir := t.TempDir()
	limit := &LoginLimit{Failures: 2, Window: caddy.Duration(time.Minute)}
	a := newApp(t, dir, func(h *Handler) { h.LoginLimit = limit })
	w := a.do(request{method: "POST", target: "/login", contentType: form, body: "username=ada&password=" + adaPassword})
	device, session := deviceCookie(t, w), sessionCookie(t, w)
	graceDevice := deviceCookie(t, a.do(request{method: "POST", target: "/login", contentType: form, body: "username=grace&password=" + gracePassword}))

	wrong := request{method: "POST", target: "/login", contentType: form, body: "username=ada&password=wrong"}
	right := request{method: "POST", target: "/login", contentType: form, body: "username=ada&password=" + adaPassword}
	for range 2 {
		a.do(wrong)
	}
	if w := a.do(right); w.Code != 429 {
		t.Fatalf("address not throttled: %d", w.Code)
	}
	for name, c := range map[string]*http.Cookie{"another user's device": graceDevice, "a session cookie": {Name: device.Name, Value: session.Value}} {
		r := right
		r.cookie = c
		if w := a.do(r); w.Code != 429 {
			t.Errorf("%s let a throttled address sign in: %d", name, w.Code)
		}
	}
	r := right
	r.cookie = device
	w = a.do(r)
	if w.Code != 303 {
		t.Fatalf("known device refused while its address is throttled: %d %q", w.Code, w.Body.String())
	}
	if again := deviceCookie(t, w); again.Value == device.Value {
		t.Error("device cookie not renewed at login")
	}

	// the device's own limit
	bad := wrong
	bad.cookie = device
	for range 2 {
		if w := a.do(bad); w.Code != 401 {
			t.Fatalf("wrong password from a known device: %d", w.Code)
		}
	}
	if w := a.do(r); w.Code != 429 {
		t.Errorf("known device past its own failure limit: %d", w.Code)
	}

	changed := newApp(t, dir, func(h *Handler) {
		h.LoginLimit = &LoginLimit{Failures: 2, Window: caddy.Duration(time.Minute)}
		h.Accounts = []caddyauth.Account{{Username: "ada", Password: mustBcrypt(adaPassword)}}
	})
	changed.ip = a.ip
	if d := changed.h.knownDevice(withCaddyContext(deviceRequest(device), false), "ada"); d != nil {
		t.Error("device cookie of the old password hash still known")
	}
	if d := a.h.knownDevice(withCaddyContext(deviceRequest(device), false), "ada"); d == nil {
		t.Error("device cookie not known to the handler that issued it")
	}
}

// deviceRequest is a login request that carries the device cookie.
func deviceRequest(c *http.Cookie) *http.Request {
	r := httptest.NewRequest("POST", "/login", nil)
	r.AddCookie(c)
	return r
}
