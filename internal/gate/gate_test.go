package gate

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/account"
	"github.com/caddy-miniapp/miniapp/internal/session"
	"github.com/caddy-miniapp/miniapp/internal/testhash"
	"github.com/caddy-miniapp/miniapp/store"
	"github.com/caddy-miniapp/miniapp/store/storage"
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
)

const (
	testLifetime = 12 * time.Hour
	testIdle     = time.Hour
	firefox      = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
)

var adaHash = testhash.Bcrypt("lovelace-1815")

// loadAccounts loads ada with the hash, in realm r.
func loadAccounts(t *testing.T, hash string) *account.Set {
	t.Helper()
	set, err := account.Load([]account.Config{{Username: "ada", Password: hash}}, "r", caddy.NewReplacer())
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// newGate is a gate as the root wires it, over a realm kept in a folder
// of the test, with a clock of its own.
func newGate(t *testing.T, domain Domain) *Gate {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	clk := new(session.Clock)
	realm, err := store.Join(ctx, storage.New(&certmagic.FileStorage{Path: t.TempDir()}), store.Options{Realm: "r", Every: time.Hour,
		Remember: testLifetime, Now: clk.Now, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = realm.Release() })
	keys, err := session.NewKeyring([][]byte{session.Random(32)}, "r")
	if err != nil {
		t.Fatal(err)
	}
	if domain.LoginURL == "" {
		domain.LoginURL = "/login"
	}
	return &Gate{Keys: keys, Shared: realm, Accounts: loadAccounts(t, adaHash), Clock: clk, Name: "miniapp_session", Domain: domain,
		Lifetime: testLifetime, Idle: testIdle}
}

// ada is the gate's account.
func ada(t *testing.T, g *Gate) *account.Account {
	t.Helper()
	acct, ok := g.Accounts.Lookup("ada")
	if !ok {
		t.Fatal("no ada")
	}
	return acct
}

// setCookies parses the Set-Cookie lines of h, by name.
func setCookies(t *testing.T, h http.Header) map[string]*http.Cookie {
	t.Helper()
	out := make(map[string]*http.Cookie)
	for _, line := range h.Values("Set-Cookie") {
		c, err := http.ParseSetCookie(line)
		if err != nil {
			t.Fatalf("Set-Cookie %q: %v", line, err)
		}
		out[c.Name] = c
	}
	return out
}

// cookieLine is the Cookie header line that sends back every cookie
// set in h.
func cookieLine(t *testing.T, h http.Header) string {
	t.Helper()
	var parts []string
	for _, c := range setCookies(t, h) {
		parts = append(parts, c.Name+"="+c.Value)
	}
	return strings.Join(parts, "; ")
}

// start signs ada in on the wire and returns the wire that sends the
// cookies back, and the session.
func start(t *testing.T, g *Gate, wire Wire, factors uint8) (Wire, *Session, http.Header) {
	t.Helper()
	h := http.Header{}
	s := g.Start(context.Background(), h, wire, ada(t, g), Client{IP: "192.0.2.7", UserAgent: firefox}, factors, session.MethodPassword)
	back := wire
	back.Cookies = []string{"theme=dark", cookieLine(t, h)}
	return back, s, h
}

func TestCookieName(t *testing.T) {
	domain, err := NewDomain("example.test", "https://auth.example.test/login", "miniapp_session")
	if err != nil {
		t.Fatal(err)
	}
	plainDomain, err := NewDomain("example.test", "http://auth.example.test/login", "miniapp_session")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		domain Domain
		secure bool
		want   string
	}{
		{"plain HTTP", Domain{}, false, "miniapp_session"},
		{"HTTPS", Domain{}, true, "__Host-miniapp_session"},
		{"a domain over HTTPS", domain, true, "__Secure-miniapp_session"},
		{"a domain, this request over HTTP", domain, false, "__Secure-miniapp_session"},
		{"a domain of an http login_url", plainDomain, true, "miniapp_session"},
	} {
		g := &Gate{Name: "miniapp_session", Domain: tc.domain}
		if got := g.CookieName(Wire{Secure: tc.secure}); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestCovers(t *testing.T) {
	host := &Gate{}
	domain := &Gate{Domain: Domain{Name: "example.test"}}
	wire := Wire{Host: "app.example.test"}
	for _, tc := range []struct {
		g    *Gate
		host string
		want bool
	}{
		{host, "app.example.test", true},
		{host, "APP.Example.Test", true},
		{host, "other.example.test", false},
		{domain, "other.example.test", true},
		{domain, "example.test", true},
		{domain, "deep.app.example.test.", true},
		{domain, "example.test.evil.net", false},
		{domain, "badexample.test", false},
	} {
		if got := tc.g.Covers(wire, tc.host); got != tc.want {
			t.Errorf("domain %q covers %q: %v, want %v", tc.g.Domain.Name, tc.host, got, tc.want)
		}
	}
}

func TestUnderDomain(t *testing.T) {
	for _, tc := range []struct {
		host string
		want bool
	}{
		{"example.test", true},
		{"EXAMPLE.test.", true},
		{"a.b.example.test", true},
		{"xexample.test", false},
		{"example.test.net", false},
		{"", false},
		{"test", false},
	} {
		if got := UnderDomain(tc.host, "example.test"); got != tc.want {
			t.Errorf("UnderDomain(%q): %v, want %v", tc.host, got, tc.want)
		}
	}
}

// TestStart: a new session is sent as its cookie (HttpOnly, Lax, Path=/,
// Max-Age of its lifetime, Secure over HTTPS), recorded in the store's
// index with its factors, client and device, and the browser is
// remembered as a device of the account.
func TestStart(t *testing.T) {
	for _, secure := range []bool{false, true} {
		g := newGate(t, Domain{})
		wire := Wire{Host: "app.example.test", Secure: secure}
		back, s, h := start(t, g, wire, 2)
		if s == nil || s.User != "ada" || s.Factors != 2 || s.Account != ada(t, g) {
			t.Fatalf("session %+v", s)
		}
		cookies := setCookies(t, h)
		c := cookies[g.CookieName(wire)]
		if c == nil || c.Value == "" || !c.HttpOnly || c.Path != "/" || c.SameSite != http.SameSiteLaxMode || c.Secure != secure ||
			c.Domain != "" || c.MaxAge < int(testLifetime.Seconds())-1 || c.MaxAge > int(testLifetime.Seconds()) {
			t.Errorf("secure %v: session cookie %+v", secure, c)
		}
		device := cookies[g.ownName(wire, "_device")]
		if device == nil || device.SameSite != http.SameSiteStrictMode || device.Secure != secure || device.MaxAge != int(deviceLifetime.Seconds()) {
			t.Errorf("secure %v: device cookie %+v", secure, device)
		}
		if len(cookies) != 2 {
			t.Errorf("secure %v: %d cookies set, want the session's and the device's", secure, len(cookies))
		}
		listed, _ := g.Shared.Sessions(nil, store.AccountID(ada(t, g).ID), [16]byte{})
		if len(listed) != 1 || listed[0].ID != s.ID || listed[0].Factors != 2 || listed[0].Address != "192.0.2.7" || listed[0].Device != "Firefox on Linux" {
			t.Errorf("secure %v: index %+v", secure, listed)
		}
		opened, why := g.Open(back, false)
		if opened == nil || why != "" || opened.ID != s.ID || opened.Factors != 2 {
			t.Errorf("secure %v: the new cookie opens as %+v, %q", secure, opened, why)
		}
		if g.KnownDevice(context.Background(), back, "ada") == nil {
			t.Errorf("secure %v: the browser is not a known device after its login", secure)
		}
	}
}

// TestOpen: every way a cookie is no session, with the reason the
// metrics count.
func TestOpen(t *testing.T) {
	wire := Wire{Host: "app.example.test", Secure: true}
	for _, tc := range []struct {
		name string
		// change makes the case from a signed-in wire; it returns the
		// wire to open
		change func(t *testing.T, g *Gate, back Wire, s *Session) Wire
		want   Refusal
		ok     bool
	}{
		{"the cookie as sent", func(_ *testing.T, _ *Gate, back Wire, _ *Session) Wire { return back }, "", true},
		{"no cookie", func(_ *testing.T, _ *Gate, back Wire, _ *Session) Wire {
			back.Cookies = []string{"theme=dark"}
			return back
		}, "", false},
		{"a forged value", func(_ *testing.T, g *Gate, back Wire, _ *Session) Wire {
			back.Cookies = []string{g.CookieName(back) + "=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}
			return back
		}, "malformed", false},
		{"another host's cookie", func(_ *testing.T, _ *Gate, back Wire, _ *Session) Wire { back.Host = "other.example.test"; return back }, "malformed", false},
		{"sent over plain HTTP", func(_ *testing.T, g *Gate, back Wire, _ *Session) Wire {
			// the __Host- cookie is not the plain one's name
			value, _ := cookieValue(back.Cookies, g.CookieName(back))
			back.Secure = false
			back.Cookies = []string{g.Name + "=" + value}
			return back
		}, "malformed", false},
		{"idle too long", func(_ *testing.T, g *Gate, back Wire, _ *Session) Wire {
			g.Clock.Advance(testIdle + 2*time.Second)
			return back
		}, "expired", false},
		{"past its lifetime", func(_ *testing.T, g *Gate, back Wire, _ *Session) Wire {
			g.Idle = 2 * testLifetime
			g.Clock.Advance(testLifetime + 2*time.Second)
			return back
		}, "expired", false},
		{"logged out", func(_ *testing.T, g *Gate, back Wire, s *Session) Wire {
			g.Shared.Revoke(context.Background(), s.ID, s.Expires)
			return back
		}, "revoked", false},
		{"signed out everywhere", func(_ *testing.T, g *Gate, back Wire, s *Session) Wire {
			g.Shared.SignOutEverywhere(context.Background(), store.AccountID(s.Account.ID))
			return back
		}, "revoked", false},
		{"a new password hash", func(t *testing.T, g *Gate, back Wire, _ *Session) Wire {
			g.Accounts = loadAccounts(t, testhash.Bcrypt("lovelace-1815"))
			return back
		}, "revoked", false},
		{"a removed user", func(t *testing.T, g *Gate, back Wire, _ *Session) Wire {
			set, err := account.Load([]account.Config{{Username: "grace", Password: adaHash}}, "r", caddy.NewReplacer())
			if err != nil {
				t.Fatal(err)
			}
			g.Accounts = set
			return back
		}, "revoked", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newGate(t, Domain{})
			back, s, _ := start(t, g, wire, 1)
			// opened once before: the gate keeps what it opened to, and
			// every refusal holds for a cookie kept as for a new one
			if first, why := g.Open(back, false); first == nil {
				t.Fatalf("the new cookie did not open: %q", why)
			}
			got, why := g.Open(tc.change(t, g, back, s), false)
			if (got != nil) != tc.ok || why != tc.want {
				t.Errorf("%+v %q, want a session %v and %q", got, why, tc.ok, tc.want)
			}
		})
	}
}

// TestOpenDomain: with a cookie domain, the cookie opens on every host
// of the domain and is bound to the domain, not to the host that set
// it; a host outside it has no session, except for the auth endpoint.
func TestOpenDomain(t *testing.T) {
	domain, err := NewDomain("example.test", "https://auth.example.test/login", "miniapp_session")
	if err != nil {
		t.Fatal(err)
	}
	g := newGate(t, domain)
	back, s, h := start(t, g, Wire{Host: "auth.example.test", Secure: true}, 1)
	c := setCookies(t, h)["__Secure-miniapp_session"]
	if c == nil || c.Domain != "example.test" || !c.Secure {
		t.Fatalf("the domain's cookie: %+v", c)
	}
	if device := setCookies(t, h)["__Host-miniapp_session_device"]; device == nil || device.Domain != "" {
		t.Errorf("the device cookie is not host-only on the login site: %+v", device)
	}
	for _, tc := range []struct {
		host    string
		anyHost bool
		ok      bool
	}{
		{"app.example.test", false, true},
		{"example.test", false, true},
		{"app.example.net", false, false},
		{"app.example.net", true, true},
	} {
		wire := back
		wire.Host, wire.Secure = tc.host, false
		got, why := g.Open(wire, tc.anyHost)
		if (got != nil) != tc.ok || (got != nil && got.ID != s.ID) {
			t.Errorf("%s (any host %v): %+v %q, want a session %v", tc.host, tc.anyHost, got, why, tc.ok)
		}
	}
}

// TestRenew: the cookie is sent again, uncached, once less than half of
// the idle window is left, with the same expiry; not before.
func TestRenew(t *testing.T) {
	g := newGate(t, Domain{})
	back, _, _ := start(t, g, Wire{Host: "app.example.test"}, 2)
	s, _ := g.Open(back, false)
	g.Clock.Advance(testIdle/2 - time.Minute)
	h := http.Header{}
	g.Renew(h, back, s)
	if len(h) != 0 {
		t.Errorf("renewed with more than half of the idle window left: %v", h)
	}
	g.Clock.Advance(2 * time.Minute)
	g.Renew(h, back, s)
	if h.Get("Cache-Control") != "no-store" || len(h.Values("Set-Cookie")) != 1 {
		t.Fatalf("renewal headers %v", h)
	}
	renewed := back
	renewed.Cookies = []string{cookieLine(t, h)}
	g.Clock.Advance(testIdle - time.Minute) // past the first cookie's idle window
	if _, why := g.Open(back, false); why != "expired" {
		t.Errorf("the old cookie past its idle window: %q", why)
	}
	got, why := g.Open(renewed, false)
	if got == nil || got.ID != s.ID || !got.Expires.Equal(s.Expires) || !got.LastSeen.After(s.LastSeen) {
		t.Errorf("the renewed cookie: %+v %q", got, why)
	}
}

// TestKeepAlive: a use recorded by the auth endpoint keeps the session
// open past its cookie's idle window; at most one write per half window.
func TestKeepAlive(t *testing.T) {
	g := newGate(t, Domain{})
	back, _, _ := start(t, g, Wire{Host: "app.example.test"}, 1)
	s, _ := g.Open(back, false)
	g.Clock.Advance(10 * time.Minute)
	g.KeepAlive(context.Background(), s)
	if used := g.Shared.LastUse(s.ID, s.Expires); !used.IsZero() {
		t.Errorf("a use recorded with most of the idle window left: %v", used)
	}
	g.Clock.Advance(30 * time.Minute)
	g.KeepAlive(context.Background(), s)
	used := g.Shared.LastUse(s.ID, s.Expires)
	if used.IsZero() {
		t.Fatal("no use recorded past half the idle window")
	}
	g.Clock.Advance(30 * time.Minute) // 70 minutes after the cookie's last use
	if got, why := g.Open(back, false); got == nil {
		t.Errorf("the session ended although the auth endpoint kept it alive: %q", why)
	}
	g.Clock.Advance(31 * time.Minute) // idle since the recorded use
	if _, why := g.Open(back, false); why != "expired" {
		t.Errorf("idle past the recorded use too: %q", why)
	}
}

// TestEnd deletes the cookie with the name, domain and flags it was set
// with.
func TestEnd(t *testing.T) {
	domain, err := NewDomain("example.test", "https://auth.example.test/login", "miniapp_session")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		g      *Gate
		wire   Wire
		name   string
		domain string
		secure bool
	}{
		{&Gate{Name: "miniapp_session"}, Wire{Host: "a.test"}, "miniapp_session", "", false},
		{&Gate{Name: "miniapp_session"}, Wire{Host: "a.test", Secure: true}, "__Host-miniapp_session", "", true},
		{&Gate{Name: "miniapp_session", Domain: domain}, Wire{Host: "app.example.test"}, "__Secure-miniapp_session", "example.test", true},
	} {
		h := http.Header{}
		tc.g.End(h, tc.wire)
		c := setCookies(t, h)[tc.name]
		if c == nil || c.Value != "" || c.MaxAge >= 0 || c.Domain != tc.domain || c.Secure != tc.secure || !c.HttpOnly || c.Path != "/" ||
			c.SameSite != http.SameSiteLaxMode {
			t.Errorf("%s: %v", tc.name, h.Values("Set-Cookie"))
		}
	}
}

// TestSetCookieInvalid: a cookie that net/http cannot write is not
// written at all, rather than as an empty header.
func TestSetCookieInvalid(t *testing.T) {
	h := http.Header{}
	setCookie(h, cookie{name: "bad name", value: "x"})
	if _, ok := h["Set-Cookie"]; ok {
		t.Errorf("an invalid cookie was written: %q", h.Values("Set-Cookie"))
	}
}

func TestCookieValue(t *testing.T) {
	for _, tc := range []struct {
		lines []string
		name  string
		value string
		ok    bool
	}{
		{[]string{"a=1; b=2"}, "b", "2", true},
		{[]string{"a=1", "b=2"}, "b", "2", true},
		{[]string{"  b=2  ;a=1"}, "b", "2", true},
		{[]string{"b_device=1; b=2"}, "b", "2", true},
		{[]string{"b=2"}, "b_device", "", false},
		{[]string{"b=x=y"}, "b", "x=y", true},
		{[]string{"b="}, "b", "", true},
		{[]string{"b"}, "b", "", false},
		{[]string{"B=1"}, "b", "", false},
		{nil, "b", "", false},
		{[]string{"b=first; b=second"}, "b", "first", true},
	} {
		value, ok := cookieValue(tc.lines, tc.name)
		if value != tc.value || ok != tc.ok {
			t.Errorf("%q in %q: %q %v, want %q %v", tc.name, tc.lines, value, ok, tc.value, tc.ok)
		}
	}
}
