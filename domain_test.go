package miniapp

import (
	"net/http"
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
	// the login itself goes there
	w := a.do(request{method: "POST", target: "/login?next=" + "https%3A%2F%2Fapp.example.test%2Fhome", contentType: form,
		body: "username=ada&password=" + adaPassword, https: true, header: map[string]string{"Host": "auth.example.test"}})
	if w.Code != 303 || w.Header().Get("Location") != "https://app.example.test/home" {
		t.Errorf("login with an app's next: %d to %q", w.Code, w.Header().Get("Location"))
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
		!strings.Contains(page, "ada") || !strings.Contains(page, "Signing out ends this session here and on every site that shares this sign-in") ||
		!strings.Contains(page, `<a href="https://app.example.test/bye">Cancel, stay signed in</a>`) {
		t.Fatalf("sign-out page: %d %s", w.Code, page)
	}
	if page := a.do(request{target: "/logout", cookie: c, https: true, header: auth}).Body.String(); !strings.Contains(page, `<a href="/profile">Cancel, stay signed in</a>`) {
		t.Errorf("sign-out page without next: %s", page)
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
