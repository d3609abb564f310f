package signin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/account"
	"github.com/caddy-miniapp/miniapp/internal/gate"
	"github.com/caddy-miniapp/miniapp/internal/guard"
	"github.com/caddy-miniapp/miniapp/internal/passkey"
	"github.com/caddy-miniapp/miniapp/internal/records"
	"github.com/caddy-miniapp/miniapp/internal/session"
	"github.com/caddy-miniapp/miniapp/internal/testhash"
	"github.com/caddy-miniapp/miniapp/internal/totp"
	"github.com/caddy-miniapp/miniapp/store"
	"github.com/caddy-miniapp/miniapp/store/storage"
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"
	rfc6238 "github.com/pquerna/otp/totp"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

const (
	adaPassword   = "lovelace-1815"
	gracePassword = "hopper-1906"
	wrongPassword = "not-the-password-42"
	// testSecret is the TOTP secret of the tests' factors
	testSecret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
	loginLimit = 5
)

var (
	adaHash   = testhash.Bcrypt(adaPassword)
	graceHash = testhash.Argon2id(gracePassword)
	// realms numbers the tests' throttles, which the process shares by
	// realm and limit
	realms atomic.Int64
)

// counter is the metrics' side of the service: what it counted.
type counter struct {
	mu     sync.Mutex
	counts map[string]int
}

func (c *counter) Login(result string) { c.add("login " + result) }

func (c *counter) SecondFactor(result, reason string) { c.add("factor " + result + " " + reason) }

func (c *counter) add(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.counts == nil {
		c.counts = make(map[string]int)
	}
	c.counts[key]++
}

// of is how often key was counted.
func (c *counter) of(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.counts[key]
}

// world is a realm's sign-in as the root's wire() builds it, over a
// realm kept in a folder of the test, with its clock, counts and logs.
type world struct {
	s     *Service
	clk   *session.Clock
	count *counter
	logs  *observer.ObservedLogs
	wire  gate.Wire
}

func newWorld(t *testing.T) *world {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	clk := new(session.Clock)
	core, logs := observer.New(zap.DebugLevel)
	logger := zap.New(core)
	shared, err := store.Join(ctx, storage.New(&certmagic.FileStorage{Path: t.TempDir()}), store.Options{Realm: "r", Every: time.Hour,
		Remember: 12 * time.Hour, Now: clk.Now, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = shared.Release() })
	keys, err := session.NewKeyring([][]byte{session.Random(32)}, "r")
	if err != nil {
		t.Fatal(err)
	}
	accounts, err := account.Load([]account.Config{{Username: "ada", Password: adaHash}, {Username: "grace", Password: graceHash}}, "r",
		caddy.NewReplacer())
	if err != nil {
		t.Fatal(err)
	}
	realm := fmt.Sprintf("signin-test-%d", realms.Add(1))
	throttle, err := guard.OpenThrottle(realm, loginLimit, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = throttle.Release() })
	domain, err := gate.NewDomain("", "", "miniapp_session")
	if err != nil {
		t.Fatal(err)
	}
	rec := &records.Store{Realm: shared, Keys: keys, Logger: logger, Accounts: accounts}
	g := &gate.Gate{Keys: keys, Shared: shared, Accounts: accounts, Clock: clk, Name: "miniapp_session", Domain: domain,
		Lifetime: 12 * time.Hour, Idle: time.Hour}
	pk := &passkey.Service{Records: rec, Clock: clk, Logger: logger}
	pk.SetAccounts(accounts.All())
	count := new(counter)
	s := &Service{Realm: realm, Accounts: accounts, Guard: guard.Guard{Throttle: throttle, Slots: guard.NewSlots(2, time.Second)},
		TOTP: &totp.Service{Records: rec, Clock: clk, Logger: logger}, Passkeys: pk, Gate: g, Clock: clk, Logger: logger, Count: count}
	return &world{s: s, clk: clk, count: count, logs: logs, wire: gate.Wire{Host: "app.example.test", Secure: true}}
}

// acct is the world's account of the name.
func (w *world) acct(t *testing.T, name string) *account.Account {
	t.Helper()
	a, ok := w.s.Accounts.Lookup(name)
	if !ok {
		t.Fatalf("no account %q", name)
	}
	return a
}

// client is a client from ip on the world's wire.
func (w *world) client(ip string) Client {
	return Client{Wire: w.wire, IP: ip, UserAgent: "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"}
}

// code is testSecret's code now.
func (w *world) code(t *testing.T) string {
	t.Helper()
	code, err := rfc6238.GenerateCodeCustom(testSecret, w.clk.Now(), rfc6238.ValidateOpts{Period: 30, Digits: 6})
	if err != nil {
		t.Fatal(err)
	}
	return code
}

// enrol gives the user a factor of testSecret, returns its recovery
// codes, and moves the clock to the next step so a code works.
func (w *world) enrol(t *testing.T, user string) []string {
	t.Helper()
	codes, _, err := w.s.TOTP.Enrol(context.Background(), user, testSecret, w.code(t))
	if err != nil {
		t.Fatal(err)
	}
	w.clk.Advance(30 * time.Second)
	return codes
}

// back is the world's wire sending back the cookies set in h.
func (w *world) back(t *testing.T, h http.Header) gate.Wire {
	t.Helper()
	wire := w.wire
	for _, line := range h.Values("Set-Cookie") {
		c, err := http.ParseSetCookie(line)
		if err != nil {
			t.Fatal(err)
		}
		if c.MaxAge >= 0 {
			wire.Cookies = append(wire.Cookies, c.Name+"="+c.Value)
		}
	}
	return wire
}

// cookieNames are the names of the cookies set (or deleted: "-name")
// in h.
func cookieNames(t *testing.T, h http.Header) []string {
	t.Helper()
	var names []string
	for _, line := range h.Values("Set-Cookie") {
		c, err := http.ParseSetCookie(line)
		if err != nil {
			t.Fatal(err)
		}
		if c.MaxAge < 0 {
			names = append(names, "-"+c.Name)
		} else {
			names = append(names, c.Name)
		}
	}
	return names
}

// refusal is the outcome's refusal, or nil.
func refusal(o Outcome) *Refusal {
	r, _ := errors.AsType[*Refusal](o.Err)
	return r
}

// noSecrets fails when a log entry holds any of the secrets, in its
// message or fields.
func noSecrets(t *testing.T, logs *observer.ObservedLogs, secrets ...string) {
	t.Helper()
	for _, e := range logs.All() {
		fields, _ := json.Marshal(e.ContextMap())
		for _, s := range secrets {
			if strings.Contains(e.Message, s) || strings.Contains(string(fields), s) {
				t.Errorf("the log holds %q: %s %s", s, e.Message, fields)
			}
		}
	}
}

// TestPassword: the right password of an account without a second
// factor starts a session of one factor, with its cookies, counted and
// logged.
func TestPassword(t *testing.T) {
	w := newWorld(t)
	h := http.Header{}
	out := w.s.Password(context.Background(), h, Login{Name: "ada", Password: adaPassword, Client: w.client("192.0.2.1")})
	if out.Err != nil || out.CodeNeeded || out.Session == nil || out.Session.User != "ada" || out.Session.Factors != 1 || out.Form != NoForm {
		t.Fatalf("outcome %+v", out)
	}
	names := cookieNames(t, h)
	if len(names) != 2 || names[0] != "__Host-miniapp_session" || names[1] != "__Host-miniapp_session_device" {
		t.Errorf("cookies %v", names)
	}
	if s, why := w.s.Gate.Open(w.back(t, h), false); s == nil || s.ID != out.Session.ID {
		t.Errorf("the cookie opens as %+v %q", s, why)
	}
	if w.count.of("login success") != 1 {
		t.Errorf("counted %v", w.count.counts)
	}
	logged := w.logs.FilterMessage("login").All()
	if len(logged) != 1 || logged[0].ContextMap()["user"] != "ada" || logged[0].ContextMap()["method"] != "password" ||
		logged[0].ContextMap()["factors"] != uint8(1) || logged[0].ContextMap()["client_ip"] != "192.0.2.1" {
		t.Errorf("logged %v", w.logs.All())
	}
	// an argon2id account too
	if out := w.s.Password(context.Background(), http.Header{}, Login{Name: "grace", Password: gracePassword, Client: w.client("192.0.2.1")}); out.Session == nil {
		t.Errorf("grace: %+v", out)
	}
	noSecrets(t, w.logs, adaPassword, gracePassword)
}

// TestPasswordRefused: a wrong password or an unknown name is a 401
// with the password form, counted and logged with the user (an unknown
// name by its length alone), never the password.
func TestPasswordRefused(t *testing.T) {
	for _, tc := range []struct {
		name, password string
		user           string
		reason         string
	}{
		{"ada", wrongPassword, "ada", "wrong password"},
		{"ada", "", "ada", "wrong password"},
		{adaPassword, adaPassword, "unknown user", "unknown user"}, // a password typed as the name
		{"mallory", wrongPassword, "unknown user", "unknown user"},
	} {
		w := newWorld(t)
		h := http.Header{}
		out := w.s.Password(context.Background(), h, Login{Name: tc.name, Password: tc.password, Client: w.client("192.0.2.1")})
		r := refusal(out)
		if r == nil || r.Status != http.StatusUnauthorized || r.Wait != 0 || out.Form != PasswordForm || out.Session != nil || len(h) != 0 {
			t.Errorf("%q: %+v %v", tc.name, out, h)
			continue
		}
		if strings.Contains(r.Reason, tc.password) && tc.password != "" || strings.Contains(r.Reason, tc.name) {
			t.Errorf("%q: the reason repeats the input: %q", tc.name, r.Reason)
		}
		if w.count.of("login failure") != 1 {
			t.Errorf("%q: counted %v", tc.name, w.count.counts)
		}
		failed := w.logs.FilterMessage("login failed").All()
		if len(failed) != 1 || failed[0].ContextMap()["user"] != tc.user || failed[0].ContextMap()["reason"] != tc.reason {
			t.Errorf("%q: logged %v", tc.name, w.logs.All())
		} else if tc.user == "unknown user" && failed[0].ContextMap()["user_length"] != int64(len(tc.name)) {
			t.Errorf("%q: logged %v", tc.name, failed[0].ContextMap())
		}
		noSecrets(t, w.logs, wrongPassword, adaPassword)
	}
}

// TestPasswordThrottled: after login_limit failures a client is refused
// with 429 and how long to wait, its right password too; another
// client, and a known device of the account, are not.
func TestPasswordThrottled(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	// a known device of ada, from an earlier login elsewhere
	h := http.Header{}
	if out := w.s.Password(ctx, h, Login{Name: "ada", Password: adaPassword, Client: w.client("198.51.100.9")}); out.Session == nil {
		t.Fatal(out.Err)
	}
	known := w.s.Gate.KnownDevice(ctx, w.back(t, h), "ada")
	if known == nil {
		t.Fatal("no known device")
	}
	for i := range loginLimit {
		if r := refusal(w.s.Password(ctx, http.Header{}, Login{Name: "ada", Password: wrongPassword, Client: w.client("192.0.2.1")})); r == nil ||
			r.Status != http.StatusUnauthorized {
			t.Fatalf("failure %d: %+v", i+1, r)
		}
	}
	out := w.s.Password(ctx, http.Header{}, Login{Name: "ada", Password: adaPassword, Client: w.client("192.0.2.1")})
	r := refusal(out)
	if r == nil || r.Status != http.StatusTooManyRequests || r.Wait <= 0 || r.Wait > time.Minute || out.Session != nil || r.RetryAfter() == "0" {
		t.Fatalf("past the limit: %+v %+v", out, r)
	}
	if w.count.of("login throttled") != 1 || w.logs.FilterMessage("login throttled").Len() != 1 {
		t.Errorf("counted %v, logged %v", w.count.counts, w.logs.All())
	}
	if out := w.s.Password(ctx, http.Header{}, Login{Name: "ada", Password: adaPassword, Client: w.client("192.0.2.2")}); out.Session == nil {
		t.Errorf("another client: %v", out.Err)
	}
	if out := w.s.Password(ctx, http.Header{}, Login{Name: "ada", Password: adaPassword, Client: w.client("192.0.2.1"), Known: known}); out.Session == nil {
		t.Errorf("a known device from the throttled address: %v", out.Err)
	}
	w.clk.Advance(time.Minute)
	if out := w.s.Password(ctx, http.Header{}, Login{Name: "ada", Password: adaPassword, Client: w.client("192.0.2.1")}); out.Session == nil {
		t.Errorf("after the window: %v", out.Err)
	}
	noSecrets(t, w.logs, wrongPassword, adaPassword)
}

// TestPasswordCode: an account with one-time codes gets the code step
// (a pending sign-in, no session) without a code, a session of two
// factors with a right one, and a 401 with the code form and a pending
// sign-in with a wrong one.
func TestPasswordCode(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	w.enrol(t, "ada")
	h := http.Header{}
	out := w.s.Password(ctx, h, Login{Name: "ada", Password: adaPassword, Client: w.client("192.0.2.1")})
	if !out.CodeNeeded || out.Session != nil || out.Err != nil {
		t.Fatalf("no code: %+v", out)
	}
	if names := cookieNames(t, h); len(names) != 1 || names[0] != "__Host-miniapp_session_pending" {
		t.Errorf("cookies %v", names)
	}
	if p, acct := w.s.Gate.Pending(ctx, w.back(t, h)); p == nil || acct.Name != "ada" {
		t.Error("the pending sign-in does not open")
	}
	if w.logs.FilterMessageSnippet("waiting for the second factor").Len() != 1 || w.count.of("login success") != 0 {
		t.Errorf("logged %v, counted %v", w.logs.All(), w.count.counts)
	}

	h = http.Header{}
	out = w.s.Password(ctx, h, Login{Name: "ada", Password: adaPassword, Code: "000000", Client: w.client("192.0.2.1")})
	r := refusal(out)
	if r == nil || r.Status != http.StatusUnauthorized || out.Form != CodeForm || out.Session != nil {
		t.Fatalf("a wrong code: %+v", out)
	}
	if names := cookieNames(t, h); len(names) != 1 || names[0] != "__Host-miniapp_session_pending" {
		t.Errorf("a wrong code's cookies %v: the code alone may follow", names)
	}
	if w.count.of("factor failure wrong_code") != 1 || w.logs.FilterMessage("second factor refused").Len() != 1 {
		t.Errorf("counted %v", w.count.counts)
	}

	code := w.code(t)
	out = w.s.Password(ctx, http.Header{}, Login{Name: "ada", Password: adaPassword, Code: code, Client: w.client("192.0.2.1")})
	if out.Session == nil || out.Session.Factors != 2 {
		t.Fatalf("a right code: %+v", out)
	}
	if w.count.of("factor success totp") != 1 || w.count.of("login success") != 1 {
		t.Errorf("counted %v", w.count.counts)
	}
	// the code is used up
	out = w.s.Password(ctx, http.Header{}, Login{Name: "ada", Password: adaPassword, Code: code, Client: w.client("192.0.2.1")})
	if r := refusal(out); r == nil || r.Status != http.StatusUnauthorized || w.count.of("factor failure replayed") != 1 {
		t.Errorf("a code used twice: %+v %v", out, w.count.counts)
	}
	// a wrong password with a right code is still a wrong password
	w.clk.Advance(30 * time.Second)
	out = w.s.Password(ctx, http.Header{}, Login{Name: "ada", Password: wrongPassword, Code: w.code(t), Client: w.client("192.0.2.3")})
	if out.Form != PasswordForm || out.Session != nil {
		t.Errorf("a wrong password with a right code: %+v", out)
	}
	noSecrets(t, w.logs, adaPassword, wrongPassword, code)
}

// pendingLogin signs in with ada's password to the code step and
// returns the Login that finishes it with a code.
func (w *world) pendingLogin(t *testing.T, ip string) Login {
	t.Helper()
	h := http.Header{}
	out := w.s.Password(context.Background(), h, Login{Name: "ada", Password: adaPassword, Client: w.client(ip)})
	if !out.CodeNeeded {
		t.Fatalf("no code step: %+v", out)
	}
	client := w.client(ip)
	client.Wire = w.back(t, h)
	p, acct := w.s.Gate.Pending(context.Background(), client.Wire)
	if p == nil {
		t.Fatal("no pending sign-in")
	}
	return Login{Client: client, Pending: p, PendingAccount: acct}
}

// TestCode: a right code finishes a pending sign-in with two factors,
// clears its cookie and ends it on every node: a copy of it is refused.
func TestCode(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	w.enrol(t, "ada")
	in := w.pendingLogin(t, "192.0.2.1")
	in.Code = w.code(t)
	h := http.Header{}
	out := w.s.Code(ctx, h, in)
	if out.Session == nil || out.Session.Factors != 2 || out.Session.User != "ada" {
		t.Fatalf("a right code: %+v", out)
	}
	names := cookieNames(t, h)
	if len(names) != 3 || names[0] != "-__Host-miniapp_session_pending" || names[1] != "__Host-miniapp_session" {
		t.Errorf("cookies %v", names)
	}
	if p, _ := w.s.Gate.Pending(ctx, in.Wire); p != nil {
		t.Error("the used pending sign-in still opens")
	}
	// a copy of the cookie, read before its use, with the next code
	w.clk.Advance(30 * time.Second)
	in.Code = w.code(t)
	h = http.Header{}
	out = w.s.Code(ctx, h, in)
	if r := refusal(out); r == nil || r.Status != http.StatusUnauthorized || out.Session != nil || !strings.Contains(r.Reason, "sign in again") {
		t.Errorf("a pending sign-in used twice: %+v", out)
	}
	if names := cookieNames(t, h); len(names) != 1 || names[0] != "-__Host-miniapp_session_pending" {
		t.Errorf("cookies %v", names)
	}
	noSecrets(t, w.logs, in.Code, adaPassword)
}

// TestCodeTooMany: a pending sign-in takes totp.MaxFailures wrong codes
// (each a 401 with the code form), then is ended, a right code too.
func TestCodeTooMany(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	codes := w.enrol(t, "ada")
	in := w.pendingLogin(t, "192.0.2.1")
	for i := range totp.MaxFailures {
		in.Code = fmt.Sprintf("%06d", i)
		if in.Code == w.code(t) {
			continue // one in a million
		}
		out := w.s.Code(ctx, http.Header{}, in)
		if r := refusal(out); r == nil || r.Status != http.StatusUnauthorized || out.Form != CodeForm {
			t.Fatalf("wrong code %d: %+v", i+1, out)
		}
	}
	in.Code = codes[0]
	h := http.Header{}
	out := w.s.Code(ctx, h, in)
	if r := refusal(out); r == nil || r.Status != http.StatusUnauthorized || out.Session != nil || out.Form != NoForm {
		t.Errorf("a right code after too many wrong ones: %+v", out)
	}
	if names := cookieNames(t, h); len(names) != 1 || names[0] != "-__Host-miniapp_session_pending" {
		t.Errorf("cookies %v", names)
	}
	// the recovery code was not spent on the ended sign-in
	if st := w.s.TOTP.StatusOf("ada"); st.RecoveryCodesLeft != totp.RecoveryCodes {
		t.Errorf("status %+v", st)
	}
}

// TestCodeThrottledNotCounted: a code refused because the client used
// up its tries is not counted against the pending sign-in.
func TestCodeThrottledNotCounted(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	w.enrol(t, "ada")
	in := w.pendingLogin(t, "192.0.2.1")
	// the client fails its logins elsewhere up to the limit
	for range loginLimit {
		w.s.Password(ctx, http.Header{}, Login{Name: "grace", Password: wrongPassword, Client: w.client("192.0.2.1")})
	}
	for range totp.MaxFailures + 2 {
		in.Code = w.code(t)
		out := w.s.Code(ctx, http.Header{}, in)
		if r := refusal(out); r == nil || r.Status != http.StatusTooManyRequests || r.Wait <= 0 {
			t.Fatalf("a throttled client's code: %+v", out)
		}
	}
	if w.count.of("factor failure throttled") != totp.MaxFailures+2 {
		t.Errorf("counted %v", w.count.counts)
	}
	w.clk.Advance(time.Minute)
	in.Code = w.code(t)
	if out := w.s.Code(ctx, http.Header{}, in); out.Session == nil {
		t.Errorf("after the window, the pending sign-in was used up by throttled tries: %+v", out)
	}
}

// TestCodeFailed maps each reason a code was refused to its status,
// count and log, never with the code.
func TestCodeFailed(t *testing.T) {
	for _, tc := range []struct {
		err    error
		status int
		reason string
		wait   bool
	}{
		{totp.ErrWrongCode, http.StatusUnauthorized, "wrong_code", false},
		{totp.ErrReplayed, http.StatusUnauthorized, "replayed", false},
		{totp.Throttled{Wait: 30 * time.Second}, http.StatusTooManyRequests, "throttled", true},
		{totp.Throttled{}, http.StatusTooManyRequests, "throttled", true},
		{records.StoreFailed{Err: errors.New("dial tcp: refused")}, http.StatusServiceUnavailable, "store", true},
		{totp.ErrUnreadable, http.StatusForbidden, "unreadable", false},
		{totp.ErrNoFactor, http.StatusUnauthorized, "no_factor", false},
	} {
		w := newWorld(t)
		r := w.s.CodeFailed("ada", "192.0.2.1", http.StatusUnauthorized, tc.err)
		if r.Status != tc.status || (r.Wait > 0) != tc.wait || r.Reason == "" {
			t.Errorf("%v: %+v", tc.err, r)
		}
		if w.count.of("factor failure "+tc.reason) != 1 {
			t.Errorf("%v: counted %v", tc.err, w.count.counts)
		}
		refused := w.logs.FilterMessage("second factor refused").All()
		if len(refused) != 1 || refused[0].ContextMap()["reason"] != tc.reason || refused[0].ContextMap()["user"] != "ada" {
			t.Errorf("%v: logged %v", tc.err, w.logs.All())
		}
	}
	w := newWorld(t)
	if r := w.s.CodeFailed("ada", "192.0.2.1", http.StatusBadRequest, totp.ErrWrongCode); r.Status != http.StatusBadRequest {
		t.Errorf("the profile's status: %+v", r)
	}
}

func TestRetryAfter(t *testing.T) {
	for wait, want := range map[time.Duration]string{time.Nanosecond: "1", time.Second: "1", 1500 * time.Millisecond: "2", 59 * time.Second: "59", 0: "1"} {
		if got := (&Refusal{Wait: wait}).RetryAfter(); got != want {
			t.Errorf("%v: %q, want %q", wait, got, want)
		}
	}
	if (&Refusal{Reason: "why"}).Error() != "why" {
		t.Error("Error is not the reason")
	}
}

// TestMustEnrol: only second_factor required and a session of one
// factor.
func TestMustEnrol(t *testing.T) {
	for _, tc := range []struct {
		required bool
		factors  uint8
		want     bool
	}{{false, 1, false}, {true, 1, true}, {true, 2, false}, {false, 2, false}} {
		s := &Service{Required: tc.required}
		if got := s.MustEnrol(&gate.Session{Session: &session.Session{Factors: tc.factors}}); got != tc.want {
			t.Errorf("required %v, %d factors: %v", tc.required, tc.factors, got)
		}
	}
}

// TestHasFactor: one-time codes, or a passkey of the account as it is
// now that verifies its user; a passkey that does not, one of an older
// password hash, or passkeys turned off, is none.
func TestHasFactor(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, w *world)
		want  bool
	}{
		{"nothing", func(*testing.T, *world) {}, false},
		{"one-time codes", func(t *testing.T, w *world) { w.enrol(t, "ada") }, true},
		{"an unreadable code record", func(t *testing.T, w *world) { spoil(t, w, "totp:ada") }, true},
		{"a passkey that verifies", func(t *testing.T, w *world) { w.putKey(t, "ada", true) }, true},
		{"a passkey that does not verify", func(t *testing.T, w *world) { w.putKey(t, "ada", false) }, false},
		{"another user's passkey", func(t *testing.T, w *world) { w.putKey(t, "grace", true) }, false},
		{"a passkey, with passkeys off", func(t *testing.T, w *world) { w.putKey(t, "ada", true); w.s.Passkeys = nil }, false},
		{"an unreadable passkeys record", func(t *testing.T, w *world) { spoil(t, w, "passkeys:ada") }, false},
	} {
		w := newWorld(t)
		tc.setup(t, w)
		if got := w.s.HasFactor(w.acct(t, "ada")); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

// spoil replaces the record named key with one that does not open.
func spoil(t *testing.T, w *world, key string) {
	t.Helper()
	if err := w.s.TOTP.Records.Swap(context.Background(), key, func([]byte) ([]byte, error) { return []byte("edited"), nil }); err != nil {
		t.Fatal(err)
	}
}

// putKey stores a passkey of the user's account, that verifies its user
// or not.
func (w *world) putKey(t *testing.T, user string, verified bool) {
	t.Helper()
	acct := w.acct(t, user)
	k := passkey.Key{ID: session.Random(16), PublicKey: []byte{1}, Account: acct.ID.Tag(), UserVerified: verified, Name: "key"}
	if err := w.s.Passkeys.Swap(context.Background(), user, func(keys []passkey.Key) ([]passkey.Key, error) { return append(keys, k), nil }); err != nil {
		t.Fatal(err)
	}
}
