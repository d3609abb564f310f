package routes

import (
	"net/http"
	"strings"
	"testing"
)

// forwarded is forward_auth's request for a page of example.com.
func forwarded(query string, c *http.Cookie, accept string) call {
	return call{method: "GET", target: "/miniapp/auth" + query, cookie: c,
		header: []string{"X-Forwarded-Proto", "http", "X-Forwarded-Host", "example.com", "X-Forwarded-Uri", "/app?x=1", "Accept", accept}}
}

func TestAuth(t *testing.T) {
	x := newTester(t, nil)
	c := x.login()
	w := x.serve((*App).Auth, forwarded("", c, ""))
	if w.Code != http.StatusOK || w.Header().Get("Remote-User") != "ada" || w.Header().Get("Remote-Groups") != "staff" ||
		w.Header().Get("Cache-Control") != "no-store" || w.Header().Get("Remote-Email") != "" {
		t.Errorf("a session: %d %v", w.Code, w.Header())
	}
	for query, status := range map[string]int{"?group=staff": 200, "?group=admins": 403, "?user=grace": 403, "?factor=2": 403, "?factor=3": 400, "?group=%zz": 400} {
		if w := x.serve((*App).Auth, forwarded(query, c, "")); w.Code != status {
			t.Errorf("%s: %d, want %d", query, w.Code, status)
		}
	}
	w = x.serve((*App).Auth, forwarded("", nil, "text/html"))
	if w.Code != http.StatusFound || w.Header().Get("Location") != "/login?next=%2Fapp%3Fx%3D1" {
		t.Errorf("a browser without a session: %d to %q", w.Code, w.Header().Get("Location"))
	}
	w = x.serve((*App).Auth, forwarded("", nil, "application/json"))
	if w.Code != http.StatusUnauthorized || !strings.HasPrefix(w.Header().Get("WWW-Authenticate"), "Cookie ") {
		t.Errorf("another client without a session: %d %v", w.Code, w.Header())
	}
	w = x.serve((*App).Auth, forwarded("?group=admins", c, "text/html"))
	if w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), "ada") || !strings.Contains(w.Body.String(), "/logout") {
		t.Errorf("a browser the rules refuse: %d, want the page offering another account; %s", w.Code, w.Body)
	}
	if w := x.serve((*App).Auth, call{method: "POST", target: "/miniapp/auth", cookie: c}); w.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d, want 405", w.Code)
	}
}

func TestSetRemote(t *testing.T) {
	h := http.Header{}
	setRemote(h, "Remote-Email", "")
	setRemote(h, "Remote-User", "ada")
	if _, has := h["Remote-Email"]; has || h.Get("Remote-User") != "ada" {
		t.Errorf("setRemote: %v, want an empty value left out", h)
	}
}
