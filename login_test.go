package miniapp

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/guard"
	"github.com/caddy-miniapp/miniapp/internal/routes"
	"github.com/caddy-miniapp/miniapp/internal/testhash"
	"github.com/caddy-miniapp/miniapp/store"
	"github.com/caddyserver/caddy/v2"
	"golang.org/x/crypto/bcrypt"
)

// TestThrottleConcurrent sends many wrong passwords at once: no more
// than the limit reach the password check.
func TestThrottleConcurrent(t *testing.T) {
	a := newApp(t, "", func(h *Handler) { h.LoginLimit = &LoginLimit{Failures: 3, Window: caddy.Duration(time.Minute)} })
	codes := make(chan int, 20)
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes <- a.do(request{method: "POST", target: "/login", contentType: form, body: "username=ada&password=wrong"}).Code
		}()
	}
	wg.Wait()
	close(codes)
	count := map[int]int{}
	for c := range codes {
		count[c]++
	}
	// one check at a time per client: exactly the limit reaches the
	// password check, and the rest are throttled
	if count[401] != 3 || count[429] != 17 {
		t.Errorf("statuses %v, want 3 × 401 and 17 × 429", count)
	}
}

func TestLoginThrottled(t *testing.T) {
	a := newApp(t, "", func(h *Handler) { h.LoginLimit = &LoginLimit{Failures: 3, Window: caddy.Duration(time.Minute)} })
	for i := 0; i < 2; i++ {
		if w := a.do(request{method: "POST", target: "/login", contentType: form, body: "username=ada&password=wrong"}); w.Code != 401 {
			t.Fatalf("failure %d: %d", i+1, w.Code)
		}
	}
	a.login("ada", adaPassword, false) // not counted, not reset
	a.login("ada", adaPassword, false)
	w := a.do(request{method: "POST", target: "/login", contentType: form, body: "username=ada&password=wrong"})
	if w.Code != 401 {
		t.Fatalf("third failure: %d", w.Code)
	}
	w = a.do(request{method: "POST", target: "/login", contentType: form, body: "username=ada&password=" + adaPassword})
	retry, _ := strconv.Atoi(w.Header().Get("Retry-After"))
	if w.Code != http.StatusTooManyRequests || retry < 59 || retry > 60 || len(w.Result().Cookies()) != 0 {
		t.Fatalf("right password while throttled: %d Retry-After %q", w.Code, w.Header().Get("Retry-After"))
	}
	if w.Body.String() != "too many failed logins; try again later\n" {
		t.Errorf("body %q", w.Body.String())
	}
	checkCommonHeaders(t, w)
	last := a.logs.All()[a.logs.Len()-1]
	if last.Message != "login throttled" || last.Level.String() != "warn" || last.ContextMap()["user"] != "ada" || last.ContextMap()["client_ip"] != a.ip {
		t.Errorf("throttled attempt logged as %s %q %v", last.Level, last.Message, last.ContextMap())
	}
	assertNoSecrets(t, a, adaPassword)

	a.advance(time.Minute)
	if w := a.do(request{method: "POST", target: "/login", contentType: form, body: "username=ada&password=" + adaPassword}); w.Code != 303 {
		t.Fatalf("after the window: %d", w.Code)
	}
}

// TestHashSlots: while every password-check slot is taken, a login waits
// for one, then is refused with 429, not charged to the client; a freed
// slot lets the next login through.
func TestHashSlots(t *testing.T) {
	checks := guard.NewSlots(2, 300*time.Millisecond)
	a := newApp(t, "", func(h *Handler) {
		h.LoginLimit = &LoginLimit{Failures: 1, Window: caddy.Duration(time.Minute)}
		h.slots = checks
	})
	for _, holder := range []string{"one", "two"} {
		if err := checks.Acquire(context.Background(), holder, false); err != nil {
			t.Fatal(err)
		}
	}
	login := request{method: "POST", target: "/login", contentType: form, body: "username=ada&password=" + adaPassword}
	w := a.do(login)
	if w.Code != 429 || w.Header().Get("Retry-After") != "1" || len(w.Result().Cookies()) != 0 {
		t.Errorf("with every slot taken: %d Retry-After %q", w.Code, w.Header().Get("Retry-After"))
	}
	go func() {
		time.Sleep(20 * time.Millisecond)
		checks.Release("one", false)
	}()
	// with a limit of one failure, a charged refusal would throttle it
	if w := a.do(login); w.Code != 303 {
		t.Errorf("after a slot was freed: %d %q", w.Code, w.Body.String())
	}
	checks.Release("two", false)
}

// TestOneAddressManyUsers: ten users behind one address (an office's
// NAT) who sign in at once, at bcrypt cost 10, all get in: the address's
// logins wait behind each other instead of being refused, and a typo
// right after them does not lock the address out.
func TestOneAddressManyUsers(t *testing.T) {
	hash := string(must(bcrypt.GenerateFromPassword([]byte(adaPassword), 10)))
	var accounts []Account
	for i := range 10 {
		accounts = append(accounts, Account{Username: fmt.Sprintf("user%d", i), Password: hash})
	}
	a := newApp(t, "", func(h *Handler) { h.Accounts = accounts })
	codes := make(chan int, 10)
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Go(func() {
			codes <- a.do(request{method: "POST", target: "/login", contentType: form, body: fmt.Sprintf("username=user%d&password=%s", i, adaPassword)}).Code
		})
	}
	wg.Wait()
	close(codes)
	for code := range codes {
		if code != 303 {
			t.Errorf("a colleague's login: %d", code)
		}
	}
	if w := a.do(request{method: "POST", target: "/login", contentType: form, body: "username=user1&password=typo"}); w.Code != 401 {
		t.Errorf("a typo: %d", w.Code)
	}
	if w := a.do(request{method: "POST", target: "/login", contentType: form, body: "username=user1&password=" + adaPassword}); w.Code != 303 {
		t.Errorf("the right password after a typo: %d", w.Code)
	}
}

// must returns v, panicking on an error.
func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestMixedHashesWarn(t *testing.T) {
	mixed := newApp(t, "", nil)
	alike := newApp(t, "", func(h *Handler) { h.Accounts = h.Accounts[:1] })
	if mixed.logs.FilterMessageSnippet("hashes differ").Len() != 1 || alike.logs.FilterMessageSnippet("hashes differ").Len() != 0 {
		t.Error("no warning for mixed hash parameters, or one for alike ones")
	}
}

// TestComparerFailure: a hash that fails to compare is an internal error:
// logged with its cause, a bare 500 for the client, and no session.
func TestComparerFailure(t *testing.T) {
	a := newApp(t, "", func(h *Handler) { h.LoginLimit = &LoginLimit{Failures: 2, Window: caddy.Duration(time.Minute)} })
	ada, _ := a.h.app.Accounts.Lookup("ada")
	ada.Comparer = failingComparer{}
	w := a.do(request{method: "POST", target: "/login", contentType: form, body: "username=ada&password=" + adaPassword})
	if w.Code != 500 || w.Body.String() != "internal server error\n" || len(w.Result().Cookies()) != 0 {
		t.Fatalf("comparer failure: %d %q", w.Code, w.Body.String())
	}
	logged := a.logs.FilterMessage("internal error").All()
	if len(logged) != 1 || !strings.Contains(logged[0].ContextMap()["error"].(string), "hash engine exploded") {
		t.Errorf("cause not logged: %v", logged)
	}
	// the failure was not the client's, so the throttle does not count it
	a.do(request{method: "POST", target: "/login", contentType: form, body: "username=grace&password=wrong"})
	if w := a.do(request{method: "POST", target: "/login", contentType: form, body: "username=grace&password=" + gracePassword}); w.Code != 303 {
		t.Errorf("an internal error counted as a failed login: %d", w.Code)
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
				h.Accounts = []Account{{Username: bc.user, Password: bc.hash}}
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
		h.Accounts = []Account{{Username: "ada", Password: testhash.Bcrypt(adaPassword)}}
	})
	changed.ip = a.ip
	if d := changed.h.app.Gate.KnownDevice(context.Background(), routes.WireOf(withCaddyContext(deviceRequest(device), false)), "ada"); d != nil {
		t.Error("device cookie of the old password hash still known")
	}
	if d := a.h.app.Gate.KnownDevice(context.Background(), routes.WireOf(withCaddyContext(deviceRequest(device), false)), "ada"); d == nil {
		t.Error("device cookie not known to the handler that issued it")
	}
}

// deviceRequest is a login request that carries the device cookie.
func deviceRequest(c *http.Cookie) *http.Request {
	r := httptest.NewRequest("POST", "/login", nil)
	r.AddCookie(c)
	return r
}

// failingComparer is a Caddy hash comparer whose hash engine fails.
type failingComparer struct{}

func (failingComparer) Compare([]byte, []byte) (bool, error) {
	return false, errors.New("hash engine exploded")
}

// TestDevicesForgotten: a sign out everywhere forgets the account's
// device cookies, and only the newest 20 of an account's browsers count
// as known devices.
func TestDevicesForgotten(t *testing.T) {
	a := newApp(t, "", nil)
	login := func(c *http.Cookie) *httptest.ResponseRecorder {
		return a.do(request{method: "POST", target: "/login", contentType: form, body: "username=ada&password=" + adaPassword, cookie: c})
	}
	known := func(c *http.Cookie) bool {
		return a.h.app.Gate.KnownDevice(context.Background(), routes.WireOf(withCaddyContext(deviceRequest(c), false)), "ada") != nil
	}
	w := login(nil)
	first, session := deviceCookie(t, w), sessionCookie(t, w)
	var newest *http.Cookie
	for range store.MaxDevices {
		newest = deviceCookie(t, login(nil))
	}
	if known(first) || !known(newest) {
		t.Errorf("after %d more browsers: the first known %v, the newest %v", store.MaxDevices, known(first), known(newest))
	}
	a.do(request{method: "POST", target: "/logout", cookie: session, contentType: form, body: "all=1"})
	if known(newest) {
		t.Error("a device cookie still known after sign out everywhere")
	}
	if again := deviceCookie(t, login(newest)); !known(again) {
		t.Error("the browser is not known again after its next login")
	}
}

// TestDeviceFloodFair: one account's many device cookies, flooding the
// password checks from 20 goroutines that keep the one slot busy, hold
// one place in the queue: five first-time users who sign in during the
// flood all get in (with known devices always first, they would wait out
// their 10 s: the wait is long so that slow checks under the race
// detector on a loaded machine do not end it, and the flood never stops
// while they wait).
func TestDeviceFloodFair(t *testing.T) {
	// checks slow enough that the flood always has one waiting
	slow := string(must(bcrypt.GenerateFromPassword([]byte(gracePassword), 8)))
	a := newApp(t, "", func(h *Handler) {
		h.Accounts = []Account{{Username: "ada", Password: adaHash}, {Username: "grace", Password: slow}}
		h.LoginLimit = &LoginLimit{Failures: 1 << 20, Window: caddy.Duration(time.Minute)}
		h.slots = guard.NewSlots(1, 10*time.Second)
	})
	flood := func(c *http.Cookie) request {
		return request{method: "POST", target: "/login", contentType: form, body: "username=grace&password=" + gracePassword, cookie: c}
	}
	// as many devices as count as known: the flood keeps each one known
	var devices []*http.Cookie
	for range store.MaxDevices {
		devices = append(devices, deviceCookie(t, a.do(flood(nil))))
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, c := range devices {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
					a.do(flood(c))
				}
			}
		})
	}
	time.Sleep(200 * time.Millisecond)
	codes := make(chan int, 5)
	var users sync.WaitGroup
	for i := range 5 {
		users.Go(func() {
			codes <- a.do(request{method: "POST", target: "/login", contentType: form, body: "username=ada&password=" + adaPassword, ip: fmt.Sprintf("203.0.113.%d", i+1)}).Code
		})
	}
	users.Wait()
	close(stop)
	wg.Wait()
	close(codes)
	for code := range codes {
		if code != 303 {
			t.Errorf("a first-time user during the flood: %d", code)
		}
	}
}
