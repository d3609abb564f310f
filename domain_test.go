package miniapp

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// domainApp is a handler that signs in for every site of example.test,
// with ada an admin with an email and a display name.
func domainApp(t *testing.T, dir, loginURL string, more ...func(h *Handler)) *testApp {
	t.Helper()
	return newApp(t, dir, func(h *Handler) {
		h.CookieDomain, h.LoginURL = "example.test", loginURL
		h.Accounts = []Account{{Username: "ada", Password: adaHash, Groups: []string{"admins", "staff"}, Email: "ada@example.test", Name: "Ada Lovelace"},
			{Username: "grace", Password: graceHash}}
		for _, f := range more {
			f(h)
		}
	})
}

func TestCookieDomainConfig(t *testing.T) {
	for _, tc := range []struct{ domain, login, want string }{
		{"com", "https://auth.com/login", "public suffix"},
		{"co.uk", "https://auth.co.uk/login", "public suffix"},
		{"github.io", "https://auth.github.io/login", "public suffix"},
		{"192.0.2.1", "https://192.0.2.1/login", "IP address"},
		{"localhost", "http://localhost/login", "localhost"},
		{"example.com", "", "needs login_url"},
		{"example.com", "/login", "needs login_url"},
		{"example.com", "https://auth.example.net/login", "must be on cookie_domain"},
		{"example.com", "https://example.com.evil.net/login", "must be on cookie_domain"},
		{"", "javascript:alert(1)", "must be an http or https URL"},
		{"", "//evil.net/login", "must be an http or https URL"},
		{"example.com", "https://auth.example.com/login?x=1", "without query"},
		{"example.com.", "https://auth.example.com/login", "not a domain name"},
		{"example.com:443", "https://auth.example.com/login", "not a domain name"},
		{"*.example.com", "https://auth.example.com/login", "not a domain name"},
		{"exa mple.com", "https://auth.example.com/login", "not a domain name"},
		{"[::1]", "https://auth.example.com/login", "IP address"},
		// what browsers read as IPv4 addresses, which net.ParseIP does not
		{"127.1", "http://127.1/login", "IP address"},
		{"0x7f.0.0.1", "http://0x7f.0.0.1/login", "IP address"},
		{"0X7F.1", "http://0x7f.1/login", "IP address"},
		{"2130706433", "http://2130706433/login", "IP address"},
		{"017700000001", "http://017700000001/login", "IP address"},
		{"example.0x10", "http://a.example.0x10/login", "IP address"},
	} {
		h := &Handler{CookieName: "miniapp_session", CookieDomain: tc.domain, LoginURL: tc.login}
		if err := h.setDomain(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("cookie_domain %q, login_url %q: %v, want %q", tc.domain, tc.login, err, tc.want)
		}
	}
	h := &Handler{CookieName: "sid", CookieDomain: ".Example.COM", LoginURL: "https://auth.example.com/login"}
	if err := h.setDomain(); err != nil || h.domain.name != "example.com" || h.domain.cookie != "__Secure-sid" || !h.domain.secure ||
		!strings.Contains(h.domain.csp, "form-action 'self' https://example.com:* https://*.example.com:*;") {
		t.Errorf("a valid domain: %+v %v", h.domain, err)
	}
	plain := &Handler{CookieName: "sid", CookieDomain: "example.test", LoginURL: "http://auth.example.test:8080/login"}
	if err := plain.setDomain(); err != nil || plain.domain.cookie != "sid" || plain.domain.secure {
		t.Errorf("a plain-HTTP login site: %+v %v", plain.domain, err)
	}
}

// TestDomainCookie: with cookie_domain the session cookie is sent to the
// whole domain under one name, and a session made on the login site
// opens every site of the domain and none outside it; the device cookie
// stays host-only.
func TestDomainCookie(t *testing.T) {
	a := domainApp(t, "", "https://auth.example.test/login")
	w := a.do(request{method: "POST", target: "/login", contentType: form, body: "username=ada&password=" + adaPassword,
		https: true, header: map[string]string{"Host": "auth.example.test"}})
	c := sessionCookie(t, w)
	if w.Code != 303 || c.Name != "__Secure-miniapp_session" || c.Domain != "example.test" || !c.Secure || !c.HttpOnly {
		t.Fatalf("login: %d, cookie %+v", w.Code, c)
	}
	device := deviceCookie(t, w)
	if device.Domain != "" || device.Name != "__Host-miniapp_session_device" {
		t.Errorf("the device cookie left its host: %+v", device)
	}
	for host, want := range map[string]int{"auth.example.test": 200, "app.example.test": 200, "example.test": 200, "example.test.evil.net": 401, "evilexample.test": 401} {
		if w := a.do(request{target: "/profile", cookie: c, https: true, header: map[string]string{"Host": host}}); w.Code != want {
			t.Errorf("the session on %s: %d, want %d", host, w.Code, want)
		}
	}
	// a protected page of an app site sends the browser to the login site
	// and back
	w = a.do(request{target: "/profile?tab=1", accept: "text/html", https: true, header: map[string]string{"Host": "app.example.test"}})
	if got := w.Header().Get("Location"); w.Code != 303 || got != "https://auth.example.test/login?next=https%3A%2F%2Fapp.example.test%2Fprofile%3Ftab%3D1" {
		t.Errorf("an app's page without a session: %d to %q", w.Code, got)
	}
	// the login page's forms may go on to the domain's sites
	w = a.do(request{target: "/login", https: true, header: map[string]string{"Host": "auth.example.test"}})
	if csp := w.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "form-action 'self' https://example.test:* https://*.example.test:*") {
		t.Errorf("login page CSP %q", csp)
	}
}

// TestAbsoluteNext: with cookie_domain, next may be an absolute URL of a
// host of the domain; look-alikes, other schemes and userinfo fall back.
func TestAbsoluteNext(t *testing.T) {
	a := domainApp(t, "", "https://auth.example.test/login")
	r := httptest.NewRequest("GET", "https://auth.example.test/login", nil)
	plain := httptest.NewRequest("GET", "http://auth.example.test/login", nil)
	for next, want := range map[string]string{
		"https://app.example.test/a?b=c#d":          "https://app.example.test/a?b=c#d",
		"https://example.test:8443/":                "https://example.test:8443/",
		"/profile":                                  "/profile",
		"http://app.example.test/":                  "",
		"https://example.test.evil.net/":            "",
		"https://evilexample.test/":                 "",
		"https://example.test@evil.net/":            "",
		"https://app.example.test\\@evil.net/":      "",
		"https:\\\\evil.net":                        "",
		"javascript://app.example.test/%0aalert(1)": "",
		"ftp://app.example.test/":                   "",
		"//app.example.test/":                       "",
		"https://app.example.test/\r\nX: y":         "",
	} {
		if got := a.h.safeNext(r, next); got != want {
			t.Errorf("next %q: %q, want %q", next, got, want)
		}
	}
	if got := a.h.safeNext(plain, "http://app.example.test/"); got != "http://app.example.test/" {
		t.Errorf("http next from a plain-HTTP login page: %q", got)
	}
	// the login itself goes there
	w := a.do(request{method: "POST", target: "/login?next=" + "https%3A%2F%2Fapp.example.test%2Fhome", contentType: form,
		body: "username=ada&password=" + adaPassword, https: true, header: map[string]string{"Host": "auth.example.test"}})
	if w.Code != 303 || w.Header().Get("Location") != "https://app.example.test/home" {
		t.Errorf("login with an app's next: %d to %q", w.Code, w.Header().Get("Location"))
	}
	// without cookie_domain nothing absolute passes
	single := newApp(t, "", nil)
	if got := single.h.safeNext(r, "https://app.example.test/"); got != "" {
		t.Errorf("an absolute next without cookie_domain: %q", got)
	}
}

// TestSignOutLink: GET /logout on the login site shows a one-button
// page whose same-origin form signs out and goes on to next.
func TestSignOutLink(t *testing.T) {
	a := domainApp(t, "", "https://auth.example.test/login")
	auth := map[string]string{"Host": "auth.example.test"}
	c := sessionCookie(t, a.do(request{method: "POST", target: "/login", contentType: form, body: "username=ada&password=" + adaPassword, https: true, header: auth}))
	w := a.do(request{target: "/logout?next=https%3A%2F%2Fapp.example.test%2Fbye", cookie: c, https: true, header: auth})
	page := w.Body.String()
	if w.Code != 200 || !strings.Contains(page, `<form method="post" action="/logout">`) || !strings.Contains(page, `value="https://app.example.test/bye"`) ||
		!strings.Contains(page, "ada") {
		t.Fatalf("sign-out page: %d %s", w.Code, page)
	}
	if w := a.do(request{target: "/profile", cookie: c, https: true, header: auth}); w.Code != 200 {
		t.Fatalf("the page alone signed out: %d", w.Code)
	}
	cross := map[string]string{"Host": "auth.example.test", "Sec-Fetch-Site": "cross-site"}
	if w := a.do(request{method: "POST", target: "/logout", cookie: c, contentType: form, body: "next=https://app.example.test/bye", https: true, header: cross}); w.Code != http.StatusForbidden {
		t.Errorf("a cross-site sign-out: %d", w.Code)
	}
	w = a.do(request{method: "POST", target: "/logout", cookie: c, contentType: form, body: "next=https%3A%2F%2Fapp.example.test%2Fbye", https: true, header: auth})
	cleared := sessionCookie(t, w)
	if w.Code != 303 || w.Header().Get("Location") != "https://app.example.test/bye" || cleared.MaxAge >= 0 || cleared.Domain != "example.test" {
		t.Errorf("sign-out: %d to %q, cookie %+v", w.Code, w.Header().Get("Location"), cleared)
	}
	for _, host := range []string{"auth.example.test", "app.example.test"} {
		if w := a.do(request{target: "/profile", cookie: c, https: true, header: map[string]string{"Host": host}}); w.Code != 401 {
			t.Errorf("the session on %s after sign-out: %d", host, w.Code)
		}
	}
}

// TestEndsInNumber: a last label of digits or of 0x and hex digits is an
// IPv4 address to a browser; any other is a name.
func TestEndsInNumber(t *testing.T) {
	for host, want := range map[string]bool{"127.1": true, "0x7f.0.0.1": true, "2130706433": true, "a.0x": true, "a.1.": true,
		"example.com": false, "0xample.com": false, "a.123abc": false, "a.0xg1": false, "x1.example.com": false} {
		if got := endsInNumber(host); got != want {
			t.Errorf("%q: %v, want %v", host, got, want)
		}
	}
}
