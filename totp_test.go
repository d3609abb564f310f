package miniapp

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/gate"
	"github.com/caddy-miniapp/miniapp/internal/routes"
	"github.com/caddy-miniapp/miniapp/internal/session"
	"github.com/caddy-miniapp/miniapp/internal/signin"
	"github.com/caddy-miniapp/miniapp/internal/testhash"
	"github.com/caddy-miniapp/miniapp/internal/testredis"
	"github.com/caddy-miniapp/miniapp/internal/totp"
	redisstore "github.com/caddy-miniapp/miniapp/store/redis"
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"
	"github.com/pquerna/otp"
	rfc6238 "github.com/pquerna/otp/totp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	goredis "github.com/redis/go-redis/v9"
)

// codeFor is the secret's code at the app's time.
func (a *testApp) codeFor(secret string) string {
	a.t.Helper()
	code, err := rfc6238.GenerateCodeCustom(secret, a.h.clock.Now(), rfc6238.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		a.t.Fatal(err)
	}
	return code
}

// post sends a form as a JSON client, with the cookie.
func (a *testApp) post(target, body string, cookie *http.Cookie) *httptest.ResponseRecorder {
	a.t.Helper()
	return a.do(request{method: "POST", target: target, contentType: form, accept: "application/json", body: body, cookie: cookie})
}

// decode reads a JSON answer.
func decode[T any](t testing.TB, w *httptest.ResponseRecorder) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
		t.Fatalf("%d %q: %v", w.Code, w.Body, err)
	}
	return v
}

// cookieNamed is the response's cookie of the name, or nil.
func cookieNamed(w *httptest.ResponseRecorder, name string) *http.Cookie {
	for _, c := range w.Result().Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// enrolled is a user with a second factor: its secret, recovery codes
// and the session that set it up.
type enrolled struct {
	secret   string
	code     string // the code that confirmed the setup
	recovery []string
	session  *http.Cookie
}

// enrol sets up a second factor for the user as the JSON API does.
func (a *testApp) enrol(user, password string) enrolled {
	a.t.Helper()
	cookie := a.login(user, password, false)
	w := a.post("/profile/totp", "", cookie)
	begin := decode[totp.Setup](a.t, w)
	if w.Code != 200 || begin.Secret == "" || begin.Enrollment == "" {
		a.t.Fatalf("begin: %d %q", w.Code, w.Body)
	}
	code := a.codeFor(begin.Secret)
	w = a.post("/profile/totp", "enrollment="+url.QueryEscape(begin.Enrollment)+"&code="+code+"&end_other_sessions=1", cookie)
	codes := decode[map[string][]string](a.t, w)["recovery_codes"]
	if w.Code != 200 || len(codes) != 10 {
		a.t.Fatalf("confirm: %d %q", w.Code, w.Body)
	}
	return enrolled{begin.Secret, code, codes, sessionCookie(a.t, w)}
}

// profileOf is the profile's JSON for the cookie.
type factorProfile struct {
	Username     string      `json:"username"`
	Factors      int         `json:"factors"`
	SecondFactor totp.Status `json:"second_factor"`
	Sessions     []struct {
		Factors int  `json:"factors"`
		Current bool `json:"current"`
	} `json:"sessions"`
}

func (a *testApp) profileOf(cookie *http.Cookie) (int, factorProfile) {
	a.t.Helper()
	w := a.do(request{target: "/profile", accept: "application/json", cookie: cookie})
	if w.Code != 200 {
		return w.Code, factorProfile{}
	}
	return w.Code, decode[factorProfile](a.t, w)
}

// TestTOTPEnrolment: the setup stores nothing until a right code, and
// then the factor (sealed), ten recovery codes shown once, and a session
// of two factors for this browser with the others ended.
func TestTOTPEnrolment(t *testing.T) {
	a := newApp(t, "", nil)
	other := a.login("ada", adaPassword, false)
	cookie := a.login("ada", adaPassword, false)
	w := a.post("/profile/totp", "", cookie)
	begin := decode[totp.Setup](t, w)
	if w.Code != 200 || !strings.HasPrefix(begin.URI, "otpauth://totp/example.com:ada?") || !strings.Contains(begin.URI, "issuer=example.com") ||
		!strings.Contains(begin.URI, "secret="+begin.Secret) || len(begin.Secret) != 32 {
		t.Fatalf("begin: %d %q", w.Code, w.Body)
	}
	if a.h.app.TOTP.Has("ada") {
		t.Fatal("a factor stored at the beginning of its setup")
	}
	wrong := "000000"
	if wrong == a.codeFor(begin.Secret) {
		wrong = "111111"
	}
	w = a.post("/profile/totp", "enrollment="+url.QueryEscape(begin.Enrollment)+"&code="+wrong, cookie)
	if w.Code != 400 || a.h.app.TOTP.Has("ada") {
		t.Fatalf("a wrong first code: %d %q, stored: %v", w.Code, w.Body, a.h.app.TOTP.Has("ada"))
	}
	page := a.do(request{method: "POST", target: "/profile/totp", contentType: form, accept: "text/html", cookie: cookie,
		body: "enrollment=" + url.QueryEscape(begin.Enrollment) + "&code=" + wrong})
	if page.Code != 400 || shownKey(page.Body.String()) != begin.Secret || !strings.Contains(page.Body.String(), "Wrong code") {
		t.Errorf("a browser's wrong first code: %d, the same key shown again: %v", page.Code, shownKey(page.Body.String()) == begin.Secret)
	}
	grace := a.login("grace", gracePassword, false)
	if w := a.post("/profile/totp", "enrollment="+url.QueryEscape(begin.Enrollment)+"&code="+a.codeFor(begin.Secret), grace); w.Code != 400 {
		t.Fatalf("another user's setup confirmed: %d", w.Code)
	}
	w = a.post("/profile/totp", "enrollment="+url.QueryEscape(begin.Enrollment)+"&code="+a.codeFor(begin.Secret)+"&end_other_sessions=1", cookie)
	codes := decode[map[string][]string](t, w)["recovery_codes"]
	if w.Code != 200 || len(codes) != 10 || w.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("confirm: %d %q", w.Code, w.Body)
	}
	fresh := sessionCookie(t, w)
	if code, p := a.profileOf(fresh); code != 200 || p.Factors != 2 || !p.SecondFactor.TOTP || p.SecondFactor.RecoveryCodesLeft != 10 || p.Sessions[0].Factors != 2 {
		t.Errorf("profile after the setup: %d %+v", code, p)
	}
	for name, c := range map[string]*http.Cookie{"the other session": other, "the session that set it up": cookie} {
		if code, _ := a.profileOf(c); code != 401 {
			t.Errorf("%s lives on: %d", name, code)
		}
	}
	sealed := string(a.h.app.Shared.Record("totp:ada"))
	if sealed == "" || strings.Contains(sealed, begin.Secret) || strings.Contains(sealed, strings.ReplaceAll(codes[0], "-", "")) {
		t.Errorf("the record holds the secret or a recovery code in clear: %q", sealed)
	}
	if s := a.logs.FilterMessage("second factor added"); s.Len() != 1 || strings.Contains(a.logText(), begin.Secret) || strings.Contains(a.logText(), codes[0]) {
		t.Errorf("%d lines for the factor added, or a secret logged", s.Len())
	}
}

// logText is everything the app logged, as text.
func (a *testApp) logText() string {
	var b strings.Builder
	for _, e := range a.logs.All() {
		b.WriteString(e.Message)
		for k, v := range e.ContextMap() {
			b.WriteString(" " + k + "=")
			b.WriteString(strings.TrimSpace(strings.ReplaceAll(toString(v), "\n", " ")))
		}
		b.WriteByte('\n')
	}
	return b.String()
}

func toString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestTOTPSignIn: a right password starts no session but a pending
// sign-in, whose code finishes it with two factors; a code works once
// (one step at or before the last used is refused), a recovery code too,
// and password and code in one request sign in as well.
func TestTOTPSignIn(t *testing.T) {
	a := newApp(t, "", nil)
	e := a.enrol("ada", adaPassword)
	byCode, byRecovery := metrics.secondFactor.WithLabelValues("miniapp", "success", "totp"), metrics.secondFactor.WithLabelValues("miniapp", "success", "recovery")
	wrongCodes, replays := metrics.secondFactor.WithLabelValues("miniapp", "failure", "wrong_code"), metrics.secondFactor.WithLabelValues("miniapp", "failure", "replayed")
	before := []float64{testutil.ToFloat64(byCode), testutil.ToFloat64(byRecovery), testutil.ToFloat64(wrongCodes), testutil.ToFloat64(replays)}
	w := a.post("/login", "username=ada&password="+adaPassword, nil)
	answer := decode[struct {
		Error        string   `json:"error"`
		SecondFactor []string `json:"second_factor"`
	}](t, w)
	pending := cookieNamed(w, "miniapp_session_pending")
	if w.Code != 401 || answer.Error != "second factor required" || len(answer.SecondFactor) != 1 || answer.SecondFactor[0] != "totp" ||
		pending == nil || pending.MaxAge != 300 || !pending.HttpOnly || cookieNamed(w, "miniapp_session") != nil {
		t.Fatalf("password of an account with a factor: %d %q %v", w.Code, w.Body, w.Header().Values("Set-Cookie"))
	}
	// the setup's code was used by the setup (the code itself: the clock
	// follows real time and may have passed into the next step)
	if w := a.post("/login", "code="+e.code, pending); w.Code != 401 {
		t.Fatalf("the setup's code again: %d %q", w.Code, w.Body)
	}
	a.advance(30 * time.Second)
	if w := a.post("/login", "code=12345x", pending); w.Code != 401 {
		t.Fatalf("a wrong code: %d", w.Code)
	}
	w = a.post("/login", "code="+a.codeFor(e.secret), pending)
	if w.Code != 200 || !strings.Contains(w.Body.String(), `"username":"ada"`) {
		t.Fatalf("the code step: %d %q", w.Code, w.Body)
	}
	if c := cookieNamed(w, "miniapp_session_pending"); c == nil || c.MaxAge >= 0 {
		t.Error("the pending sign-in's cookie is not cleared")
	}
	if code, p := a.profileOf(sessionCookie(t, w)); code != 200 || p.Factors != 2 {
		t.Errorf("a session of password and code: %d %+v", code, p)
	}
	if w := a.post("/login", "code="+a.codeFor(e.secret), pending); w.Code != 401 {
		t.Errorf("the same code twice: %d", w.Code)
	}
	a.advance(30 * time.Second)
	if w := a.post("/login", "code="+a.codeFor(e.secret), pending); w.Code != 401 {
		t.Errorf("a copy of a pending cookie that signed in, with a new code: %d", w.Code)
	}
	w = a.post("/login", "username=ada&password="+adaPassword+"&code="+a.codeFor(e.secret), nil)
	if w.Code != 200 {
		t.Fatalf("password and code in one request: %d %q", w.Code, w.Body)
	}
	w = a.post("/login", "username=ada&password="+adaPassword+"&code="+strings.ToUpper(e.recovery[0]), nil)
	if w.Code != 200 {
		t.Fatalf("a recovery code: %d %q", w.Code, w.Body)
	}
	if code, p := a.profileOf(sessionCookie(t, w)); code != 200 || p.Factors != 2 || p.SecondFactor.RecoveryCodesLeft != 9 {
		t.Errorf("after a recovery code: %d %+v", code, p)
	}
	if w := a.post("/login", "username=ada&password="+adaPassword+"&code="+e.recovery[0], nil); w.Code != 401 {
		t.Errorf("a recovery code twice: %d", w.Code)
	}
	if w := a.post("/login", "username=ada&password=wrong&code="+e.recovery[1], nil); w.Code != 401 || cookieNamed(w, "miniapp_session_pending") != nil {
		t.Errorf("a wrong password with a code: %d", w.Code)
	}
	if w := a.post("/login", "username=grace&password="+gracePassword+"&code=123456", nil); w.Code != 200 {
		t.Errorf("a user without a factor sending a code: %d", w.Code)
	}
	// a browser goes to the code form and back to next
	w = a.do(request{method: "POST", target: "/login", contentType: form, accept: "text/html", body: "username=ada&password=" + adaPassword + "&next=/app"})
	if loc := w.Header().Get("Location"); w.Code != 303 || loc != "/login?step=code&next=%2Fapp" {
		t.Fatalf("a browser's password: %d to %q", w.Code, loc)
	}
	pending = cookieNamed(w, "miniapp_session_pending")
	page := a.do(request{target: "/login?step=code&next=/app", accept: "text/html", cookie: pending})
	if page.Code != 200 || !strings.Contains(page.Body.String(), `autocomplete="one-time-code"`) || !strings.Contains(page.Body.String(), `value="/app"`) {
		t.Fatalf("the code form: %d %q", page.Code, page.Body)
	}
	a.advance(30 * time.Second)
	w = a.do(request{method: "POST", target: "/login", contentType: form, accept: "text/html", body: "code=" + a.codeFor(e.secret) + "&next=/app", cookie: pending})
	if w.Code != 303 || w.Header().Get("Location") != "/app" {
		t.Errorf("a browser's code: %d to %q", w.Code, w.Header().Get("Location"))
	}
	if strings.Contains(a.logText(), e.secret) || strings.Contains(a.logText(), e.recovery[0]) {
		t.Error("a secret or code logged")
	}
	after := []float64{testutil.ToFloat64(byCode), testutil.ToFloat64(byRecovery), testutil.ToFloat64(wrongCodes), testutil.ToFloat64(replays)}
	for i, want := range []float64{3, 1, 2, 1} {
		if got := after[i] - before[i]; got != want {
			t.Errorf("second factor metric %d: +%v, want +%v", i, got, want)
		}
	}
}

// TestTOTPThrottle: five wrong codes for an account within a minute,
// from any clients, refuse its code step with 429 and Retry-After for
// the rest of the window, a right code included.
func TestTOTPThrottle(t *testing.T) {
	a := newApp(t, "", func(h *Handler) { h.LoginLimit = &LoginLimit{Failures: 100, Window: caddy.Duration(time.Minute)} })
	e := a.enrol("ada", adaPassword)
	a.advance(30 * time.Second)
	for i := range totp.MaxFailures {
		w := a.do(request{method: "POST", target: "/login", contentType: form, accept: "application/json", ip: nextIP(),
			body: "username=ada&password=" + adaPassword + "&code=00000" + string(rune('0'+i))})
		if w.Code != 401 {
			t.Fatalf("wrong code %d: %d", i, w.Code)
		}
	}
	w := a.do(request{method: "POST", target: "/login", contentType: form, accept: "application/json", ip: nextIP(),
		body: "username=ada&password=" + adaPassword + "&code=" + a.codeFor(e.secret)})
	if w.Code != 429 || w.Header().Get("Retry-After") == "" {
		t.Fatalf("a right code after five wrong ones: %d %q", w.Code, w.Header().Get("Retry-After"))
	}
	g := a.enrol("grace", gracePassword)
	if w := a.post("/login", "username=grace&password="+gracePassword+"&code="+g.recovery[0], nil); w.Code != 200 {
		t.Errorf("another account is throttled too: %d", w.Code)
	}
	a.advance(time.Minute)
	w = a.do(request{method: "POST", target: "/login", contentType: form, accept: "application/json", ip: nextIP(),
		body: "username=ada&password=" + adaPassword + "&code=" + a.codeFor(e.secret)})
	if w.Code != 200 {
		t.Errorf("after the window: %d %q", w.Code, w.Body)
	}

	// many guesses at once: each attempt is counted before it is checked
	a.advance(time.Minute)
	codes := make(chan int, 20)
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			codes <- a.do(request{method: "POST", target: "/login", contentType: form, accept: "application/json", ip: nextIP(),
				body: fmt.Sprintf("username=grace&password=%s&code=%06d", gracePassword, i)}).Code
		})
	}
	wg.Wait()
	close(codes)
	checked := 0
	for code := range codes {
		if code == 401 {
			checked++
		}
	}
	if checked > totp.MaxFailures {
		t.Errorf("%d of 20 guesses at once were checked, want at most %d", checked, totp.MaxFailures)
	}
}

// TestTOTPStoreDownAtStart: a node that starts while the store is down
// does not take a user with a second factor for one without: the
// password alone signs nobody in until it can tell.
func TestTOTPStoreDownAtStart(t *testing.T) {
	dir := t.TempDir()
	a := newApp(t, dir, nil)
	a.enrol("ada", adaPassword)
	storage := &flakyStorage{FileStorage: &certmagic.FileStorage{Path: dir}}
	storage.down.Store(true)
	h, logs := provisionOn(t, storage, func(h *Handler) {
		h.SecretKeys = []string{testKey}
		h.RevocationSync = caddy.Duration(1100 * time.Millisecond)
	})
	b := &testApp{t: t, h: h, logs: logs, storage: storage, ip: nextIP()}
	if w := b.post("/login", "username=ada&password="+adaPassword, nil); w.Code != 503 || cookieNamed(w, "miniapp_session") != nil {
		t.Fatalf("a password while the store is down since the start: %d %q", w.Code, w.Body)
	}
	if w := b.post("/login", "username=grace&password="+gracePassword, nil); w.Code != 503 {
		t.Errorf("a user without a factor, while nothing is known: %d", w.Code)
	}
	storage.down.Store(false)
	if err := b.h.app.Shared.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	if w := b.post("/login", "username=ada&password="+adaPassword, nil); w.Code != 401 || cookieNamed(w, "miniapp_session_pending") == nil {
		t.Errorf("once the store is back: %d %q", w.Code, w.Body)
	}
}

// TestTOTPReplaceNeedsTheFactor: a session of the password alone (from
// before the factor, or kept by unticking "sign out my other sessions")
// cannot replace the factor or add a passkey beside it.
func TestTOTPReplaceNeedsTheFactor(t *testing.T) {
	a := newApp(t, "", nil)
	e := a.enrol("ada", adaPassword)
	oneFactor := a.seal(a.newSession("ada"))
	for _, body := range []string{"", "password=" + adaPassword} {
		w := a.post("/profile/totp", body, oneFactor)
		if w.Code != 403 || !strings.Contains(w.Body.String(), "enter a current code") {
			t.Errorf("begin from a session of one factor (%q): %d %q", body, w.Code, w.Body)
		}
	}
	a.advance(30 * time.Second)
	if w := a.post("/profile/totp", "current_code="+a.codeFor(e.secret), oneFactor); w.Code != 200 {
		t.Errorf("begin from a session of one factor with a current code: %d %q", w.Code, w.Body)
	}
	if w := a.post("/profile/totp", "", e.session); w.Code != 200 {
		t.Errorf("begin from a session of two factors: %d", w.Code)
	}
}

// TestPendingSignIn: a pending sign-in's cookie is refused when forged,
// expired, of another realm, after a sign out everywhere, or after five
// wrong codes.
func TestPendingSignIn(t *testing.T) {
	a := newApp(t, "", nil)
	e := a.enrol("ada", adaPassword)
	start := func() *http.Cookie {
		return cookieNamed(a.post("/login", "username=ada&password="+adaPassword, nil), "miniapp_session_pending")
	}
	codeWith := func(c *http.Cookie) int {
		return a.post("/login", "code="+a.codeFor(e.secret), c).Code
	}
	a.advance(30 * time.Second)
	if code := codeWith(&http.Cookie{Name: "miniapp_session_pending", Value: session.NewSecret()}); code != 401 {
		t.Errorf("a forged pending cookie: %d", code)
	}
	expired := start()
	a.advance(gate.PendingLifetime + time.Second)
	if code := codeWith(expired); code != 401 {
		t.Errorf("an expired pending cookie: %d", code)
	}
	b := newApp(t, "", func(h *Handler) { h.Realm = "other" })
	foreign := cookieNamed(b.post("/login", "username=ada&password="+adaPassword, nil), "miniapp_session_pending")
	if foreign != nil {
		t.Fatal("a pending sign-in for an account without a factor")
	}
	otherRealm := a.h.app.Keys.Seal(session.PurposePending, b.newSession("ada"), "miniapp_session_pending", "example.com")
	if code := codeWith(&http.Cookie{Name: "miniapp_session_pending", Value: otherRealm}); code != 401 {
		t.Errorf("a pending cookie of another account: %d", code)
	}
	signedOut := start()
	a.h.app.Shared.SignOutEverywhere(context.Background(), a.id("ada"))
	if code := codeWith(signedOut); code != 401 {
		t.Errorf("a pending cookie from before a sign out everywhere: %d", code)
	}
	a.advance(30 * time.Second)
	tried := start()
	for i := range totp.MaxFailures {
		if w := a.do(request{method: "POST", target: "/login", contentType: form, accept: "application/json", ip: nextIP(), cookie: tried,
			body: "code=99999" + string(rune('0'+i))}); w.Code != 401 {
			t.Fatalf("wrong code %d: %d", i, w.Code)
		}
	}
	a.advance(totp.Window) // the account's window is over; the pending sign-in's is not
	if w := a.post("/login", "code="+a.codeFor(e.secret), tried); w.Code != 401 || !strings.Contains(w.Body.String(), "sign in again") {
		t.Errorf("a pending sign-in after five wrong codes: %d %q", w.Code, w.Body)
	}
}

// TestTOTPRecentSignIn: adding a first factor needs a sign-in of the
// last ten minutes or the password, once per setup.
func TestTOTPRecentSignIn(t *testing.T) {
	a := newApp(t, "", nil)
	cookie := a.login("ada", adaPassword, false)
	a.advance(signin.RecentSignIn + time.Minute)
	w := a.post("/profile/totp", "", cookie)
	if w.Code != 403 || !strings.Contains(w.Body.String(), `"error":"enter your password to change how you sign in`) {
		t.Fatalf("an old session: %d %q", w.Code, w.Body)
	}
	if w := a.post("/profile/totp", "password=wrong", cookie); w.Code != 403 {
		t.Errorf("a wrong password: %d", w.Code)
	}
	w = a.post("/profile/totp", "password="+adaPassword, cookie)
	begin := decode[totp.Setup](t, w)
	if w.Code != 200 || begin.Enrollment == "" {
		t.Fatalf("the password: %d %q", w.Code, w.Body)
	}
	// the setup began with the password: its confirmation needs it no more
	if w := a.post("/profile/totp", "enrollment="+url.QueryEscape(begin.Enrollment)+"&code="+a.codeFor(begin.Secret), cookie); w.Code != 200 {
		t.Errorf("a confirmation of a setup begun with the password: %d %q", w.Code, w.Body)
	}
	a.advance(totp.EnrollmentLifetime + time.Minute)
	fresh := a.login("grace", gracePassword, false)
	w = a.post("/profile/totp", "", fresh)
	begin = decode[totp.Setup](t, w)
	a.advance(totp.EnrollmentLifetime)
	if w := a.post("/profile/totp", "password="+gracePassword+"&enrollment="+url.QueryEscape(begin.Enrollment)+"&code="+a.codeFor(begin.Secret), fresh); w.Code != 400 {
		t.Errorf("an expired setup: %d", w.Code)
	}
}

// TestTOTPManage: new recovery codes and turning the factor off need a
// current code; the old recovery codes stop working.
func TestTOTPManage(t *testing.T) {
	a := newApp(t, "", nil)
	e := a.enrol("ada", adaPassword)
	for _, body := range []string{"action=recovery-codes", "action=recovery-codes&code=000000", "action=disable", "action=disable&code=abcd-efgh-jkmn", "action=nonsense&code=1"} {
		if w := a.post("/profile/totp", body, e.session); w.Code != 400 {
			t.Errorf("%s: %d", body, w.Code)
		}
	}
	a.advance(30 * time.Second)
	w := a.post("/profile/totp", "action=recovery-codes&code="+a.codeFor(e.secret), e.session)
	codes := decode[map[string][]string](t, w)["recovery_codes"]
	if w.Code != 200 || len(codes) != 10 || codes[0] == e.recovery[0] {
		t.Fatalf("new recovery codes: %d %q", w.Code, w.Body)
	}
	if w := a.post("/login", "username=ada&password="+adaPassword+"&code="+e.recovery[2], nil); w.Code != 401 {
		t.Errorf("an old recovery code: %d", w.Code)
	}
	if w := a.post("/profile/totp", "action=disable&code="+codes[0], e.session); w.Code != 200 || !strings.Contains(w.Body.String(), `"totp":false`) {
		t.Fatalf("turning it off with a recovery code: %d %q", w.Code, w.Body)
	}
	if a.h.app.TOTP.Has("ada") || a.logs.FilterMessage("second factor removed").Len() != 1 {
		t.Error("the factor is still there, or its removal not logged")
	}
	if w := a.post("/login", "username=ada&password="+adaPassword, nil); w.Code != 200 {
		t.Errorf("a password alone once the factor is off: %d", w.Code)
	}
}

// TestTOTPPage: the setup page shows the QR code as a data: image (which
// its CSP allows, and no other page's), the key as text and the form;
// with a factor, its state and the forms to manage it.
func TestTOTPPage(t *testing.T) {
	a := newApp(t, "", func(h *Handler) { h.TOTPIssuer = "Example Corp" })
	cookie := a.login("ada", adaPassword, false)
	w := a.do(request{target: "/profile/totp", accept: "text/html", cookie: cookie})
	body := w.Body.String()
	if w.Code != 200 || !strings.Contains(body, `src="data:image/png;base64,`) || !strings.Contains(body, `name="enrollment"`) ||
		!strings.Contains(body, `name="end_other_sessions" value="1" checked`) || strings.Contains(body, `name="password"`) {
		t.Fatalf("setup page: %d %s", w.Code, body)
	}
	if csp := w.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "img-src 'self' data:") {
		t.Errorf("setup page CSP %q", csp)
	}
	if csp := a.do(request{target: "/profile", accept: "text/html", cookie: cookie}).Header().Get("Content-Security-Policy"); strings.Contains(csp, "data:") {
		t.Errorf("the profile allows data: images: %q", csp)
	}
	secret := shownKey(body)
	if groups := between(body, `<code id="totp-secret" class="key">`, "</code>"); strings.Count(groups, "<span>") != len(secret)/4 {
		t.Errorf("the key is not shown in groups of four: %s", groups)
	}
	if w := a.do(request{target: "/profile/totp", cookie: cookie, accept: "text/html"}); shownKey(w.Body.String()) == secret {
		t.Error("two visits show one secret")
	}
	enrollment := between(body, `name="enrollment" value="`, `"`)
	w = a.do(request{method: "POST", target: "/profile/totp", contentType: form, accept: "text/html", cookie: cookie,
		body: "enrollment=" + url.QueryEscape(enrollment) + "&code=" + a.codeFor(secret) + "&end_other_sessions=1"})
	if w.Code != 200 || strings.Count(w.Body.String(), "<li><code>") != 10 || !strings.Contains(w.Body.String(), "shown only this once") {
		t.Fatalf("recovery codes page: %d %s", w.Code, w.Body)
	}
	key, _ := totp.KeyOf("Example Corp", "ada", secret)
	if key == nil || !strings.Contains(key.URL(), "issuer=Example%20Corp") {
		t.Errorf("issuer not used: %v", key)
	}
	fresh := sessionCookie(t, w)
	page := a.do(request{target: "/profile/totp", accept: "text/html", cookie: fresh}).Body.String()
	if !strings.Contains(page, `<strong id="codes-left">10</strong>`) || strings.Contains(page, "data:image") {
		t.Errorf("the page of an enrolled user: %s", page)
	}
	if p := a.do(request{target: "/profile", accept: "text/html", cookie: fresh}).Body.String(); !strings.Contains(p, "On · recovery codes left: 10") {
		t.Errorf("profile page without the factor's state")
	}
}

// between is the text of s between the first before and the after that
// follows it.
func between(s, before, after string) string {
	_, rest, _ := strings.Cut(s, before)
	out, _, _ := strings.Cut(rest, after)
	return out
}

// TestSecondFactorRequired: with second_factor required, a password
// alone gives a session that can only enrol: browsers go to the setup,
// other clients get 403, the auth endpoint never loops to the login
// page; once enrolled, the session has two factors.
func TestSecondFactorRequired(t *testing.T) {
	a := newApp(t, "", func(h *Handler) {
		h.SecondFactor = factorRequired
		h.Protect = []string{"/app/*"}
	})
	w := a.do(request{method: "POST", target: "/login", contentType: form, accept: "text/html", body: "username=ada&password=" + adaPassword + "&next=/app/x"})
	if w.Code != 303 || w.Header().Get("Location") != routes.TOTPPath {
		t.Fatalf("a password alone: %d to %q", w.Code, w.Header().Get("Location"))
	}
	cookie := sessionCookie(t, w)
	for _, target := range []string{"/profile", "/app/x"} {
		if w := a.do(request{target: target, accept: "text/html", cookie: cookie}); w.Code != 303 || w.Header().Get("Location") != routes.TOTPPath {
			t.Errorf("a browser at %s: %d to %q", target, w.Code, w.Header().Get("Location"))
		}
		w := a.do(request{target: target, accept: "application/json", cookie: cookie})
		if w.Code != 403 || !strings.Contains(w.Body.String(), `"error":"second factor enrollment required"`) {
			t.Errorf("an API client at %s: %d %q", target, w.Code, w.Body)
		}
	}
	if w := a.do(request{target: "/public", cookie: cookie}); w.Code != 299 {
		t.Errorf("a public path: %d", w.Code)
	}
	w = a.do(request{target: routes.AuthPath, accept: "text/html", cookie: cookie})
	if w.Code != 302 || w.Header().Get("Location") != routes.TOTPPath {
		t.Errorf("the auth endpoint for a browser: %d to %q", w.Code, w.Header().Get("Location"))
	}
	if w := a.do(request{target: routes.AuthPath, cookie: cookie}); w.Code != 403 {
		t.Errorf("the auth endpoint for an API client: %d", w.Code)
	}
	nginx := a.do(request{target: routes.AuthPath, accept: "text/html", cookie: cookie, header: map[string]string{"X-Original-URL": "http://example.com/app/x"}})
	if nginx.Code != 401 || nginx.Header().Get("Location") != routes.TOTPPath {
		t.Errorf("the auth endpoint behind nginx: %d to %q", nginx.Code, nginx.Header().Get("Location"))
	}
	if w := a.do(request{target: routes.TOTPPath, accept: "text/html", cookie: cookie}); w.Code != 200 || !strings.Contains(w.Body.String(), "requires two-step sign-in") {
		t.Fatalf("the setup page: %d", w.Code)
	}
	begin := decode[totp.Setup](t, a.post(routes.TOTPPath, "", cookie))
	w = a.post(routes.TOTPPath, "enrollment="+url.QueryEscape(begin.Enrollment)+"&code="+a.codeFor(begin.Secret), cookie)
	if w.Code != 200 {
		t.Fatalf("enrolment: %d %q", w.Code, w.Body)
	}
	fresh := sessionCookie(t, w)
	if w := a.do(request{target: "/app/x", cookie: fresh}); w.Code != 299 {
		t.Errorf("a protected path after enrolment: %d", w.Code)
	}
	if w := a.do(request{target: routes.AuthPath, cookie: fresh}); w.Code != 200 {
		t.Errorf("the auth endpoint after enrolment: %d", w.Code)
	}
}

// TestAuthSecondFactor: factor=2 asks for a session of two factors; a
// browser of an account with a factor signs in again, anyone else gets
// 403. {http.miniapp.factors} carries the session's factors.
func TestAuthSecondFactor(t *testing.T) {
	a := newApp(t, "", nil)
	grace := a.login("grace", gracePassword, false)
	e := a.enrol("ada", adaPassword)
	oneFactor := a.seal(a.newSession("ada"))
	for _, tc := range []struct {
		name   string
		cookie *http.Cookie
		accept string
		want   int
	}{
		{"two factors", e.session, "", 200},
		{"one factor of an account with two, browser", oneFactor, "text/html", 302},
		{"one factor of an account with two, API", oneFactor, "", 403},
		{"an account without a factor", grace, "text/html", 403},
	} {
		if w := a.do(request{target: routes.AuthPath + "?factor=2", accept: tc.accept, cookie: tc.cookie}); w.Code != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, w.Code, tc.want)
		}
	}
	if w := a.do(request{target: routes.AuthPath + "?factor=3", cookie: e.session}); w.Code != 400 {
		t.Errorf("factor=3: %d", w.Code)
	}
	if w := a.do(request{target: routes.AuthPath, cookie: grace}); w.Code != 200 {
		t.Errorf("one factor without factor=2: %d", w.Code)
	}
	r := withClientIP(withCaddyContext(httptest.NewRequest("GET", "/x", nil), false), "192.0.2.1")
	r.AddCookie(e.session)
	if err := a.h.ServeHTTP(httptest.NewRecorder(), r, nextHandler); err != nil {
		t.Fatal(err)
	}
	if got, _ := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer).GetString("http.miniapp.factors"); got != "2" {
		t.Errorf("{http.miniapp.factors} = %q", got)
	}
}

// TestTOTPAcrossNodes: a factor set up on one node signs in on another,
// a code used on one is refused on the other, and a restart keeps it; on
// both backends. The storage files never hold the secret.
func TestTOTPAcrossNodes(t *testing.T) {
	for name, use := range storePlaces(t) {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			a, b := twoNodes(t, dir, use)
			e := a.enrol("ada", adaPassword)
			syncUntilRecord(t, b, "totp:ada")
			a.advance(30 * time.Second)
			code := a.codeFor(e.secret)
			if w := b.post("/login", "username=ada&password="+adaPassword+"&code="+code, nil); w.Code != 200 {
				t.Fatalf("node B: %d %q", w.Code, w.Body)
			}
			if w := a.post("/login", "username=ada&password="+adaPassword+"&code="+code, nil); w.Code != 401 {
				t.Errorf("node A took the code B used: %d", w.Code)
			}
			if w := a.post("/login", "username=ada&password="+adaPassword+"&code="+e.recovery[0], nil); w.Code != 200 {
				t.Fatalf("a recovery code on A: %d", w.Code)
			}
			if w := b.post("/login", "username=ada&password="+adaPassword+"&code="+e.recovery[0], nil); w.Code != 401 {
				t.Errorf("node B took the recovery code A used: %d", w.Code)
			}
			// a new node, where ada has a new password: the factor stays
			newHash := testhash.Bcrypt("a new password")
			restarted := newApp(t, dir, func(h *Handler) {
				use(h)
				h.RevocationSync = caddy.Duration(1200 * time.Millisecond)
				h.Accounts = []Account{{Username: "ada", Password: newHash}}
			})
			if w := restarted.post("/login", "username=ada&password=a+new+password", nil); w.Code != 401 || cookieNamed(w, "miniapp_session_pending") == nil {
				t.Errorf("a new node, after a password change, signs in without the factor: %d", w.Code)
			}
			if leaks := redisValuesWith(t, name, a, e.secret); leaks != "" {
				t.Errorf("redis holds the secret in %s", leaks)
			}
			err := filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
				if err == nil && !info.IsDir() {
					data, _ := os.ReadFile(path)
					if strings.Contains(string(data), e.secret) {
						t.Errorf("%s holds the secret", path)
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}

// redisValuesWith names the keys of the app's Redis whose value holds s;
// none for another store.
func redisValuesWith(t *testing.T, place string, a *testApp, s string) string {
	st, ok := a.h.store.(*redisstore.Store)
	if place != "redis" || !ok {
		return ""
	}
	c := goredis.NewClient(&goredis.Options{Addr: st.Address[0]})
	defer func() { _ = c.Close() }()
	ctx := context.Background()
	keys, err := c.Keys(ctx, "*").Result()
	if err != nil || len(keys) == 0 {
		t.Fatalf("redis keys: %v %v", keys, err)
	}
	var found []string
	for _, k := range keys {
		var values []string
		switch c.Type(ctx, k).Val() {
		case "string":
			values = []string{c.Get(ctx, k).Val()}
		case "hash":
			for f, v := range c.HGetAll(ctx, k).Val() {
				values = append(values, f, v)
			}
		case "zset":
			values = c.ZRange(ctx, k, 0, -1).Val()
		case "stream":
			for _, m := range c.XRange(ctx, k, "-", "+").Val() {
				for f, v := range m.Values {
					values = append(values, f, fmt.Sprint(v))
				}
			}
		default:
			t.Fatalf("key %s of a type the test does not read", k)
		}
		if strings.Contains(strings.Join(values, "\n"), s) {
			found = append(found, k)
		}
	}
	return strings.Join(found, ", ")
}

// twoNodes are two handlers on one store (the storage folder dir, and
// what use sets), each with its own memory of it, on one clock.
func twoNodes(t *testing.T, dir string, use func(*Handler)) (*testApp, *testApp) {
	a := newApp(t, dir, use)
	b := newApp(t, dir, func(h *Handler) { use(h); h.RevocationSync = caddy.Duration(1100 * time.Millisecond) })
	b.h.clock = a.h.clock
	return a, b
}

// syncUntilRecord syncs the app until it holds the record.
func syncUntilRecord(t *testing.T, a *testApp, key string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); a.h.app.Shared.Record(key) == nil; {
		if time.Now().After(deadline) {
			t.Fatalf("the record %s did not reach the other node", key)
		}
		_ = a.h.app.Shared.Sync(context.Background())
	}
}

// storePlaces are the two backends, as a change of a handler's config:
// the default storage, and a Redis started for the test.
func storePlaces(t *testing.T) map[string]func(*Handler) {
	r := testredis.Start(t)
	return map[string]func(*Handler){
		"storage": func(*Handler) {},
		"redis": func(h *Handler) {
			st := &redisstore.Store{Address: []string{r.Addr}}
			if err := st.Provision(caddy.Context{}); err != nil {
				t.Fatal(err)
			}
			h.store = st
		},
	}
}

// TestPendingSingleUseAcrossNodes: after a right code on one node, the
// same pending cookie with the next code signs nobody in on another
// node once that node has synced (Redis: at once).
func TestPendingSingleUseAcrossNodes(t *testing.T) {
	for name, use := range storePlaces(t) {
		t.Run(name, func(t *testing.T) {
			a, b := twoNodes(t, t.TempDir(), use)
			e := a.enrol("ada", adaPassword)
			syncUntilRecord(t, b, "totp:ada")
			a.advance(30 * time.Second)
			pending := cookieNamed(a.post("/login", "username=ada&password="+adaPassword, nil), "miniapp_session_pending")
			if w := a.post("/login", "code="+a.codeFor(e.secret), pending); w.Code != 200 {
				t.Fatalf("the code on node A: %d %q", w.Code, w.Body)
			}
			if err := b.h.app.Shared.Sync(context.Background()); err != nil {
				t.Fatal(err)
			}
			a.advance(30 * time.Second)
			if w := b.post("/login", "code="+a.codeFor(e.secret), pending); w.Code != 401 {
				t.Errorf("the used pending cookie with the next code on node B: %d %q", w.Code, w.Body)
			}
		})
	}
}

// shownKey is the key a setup page shows, in groups of four.
func shownKey(page string) string {
	groups := between(page, `<code id="totp-secret" class="key">`, "</code>")
	return strings.NewReplacer("<span>", "", "</span>", "").Replace(groups)
}
