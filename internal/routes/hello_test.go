package routes

import (
	"net/http"
	"strings"
	"testing"
)

func TestHello(t *testing.T) {
	x := newTester(t, nil)
	for _, tc := range []struct {
		c      call
		status int
		body   string
	}{
		{call{method: "GET", target: "/hello"}, 200, "Hello, World!"},
		{call{method: "GET", target: "/hello?name=Ada"}, 200, "Hello, Ada!"},
		{call{method: "GET", target: "/hello?name=Ada", header: []string{"Accept", "application/json"}}, 200, `{"message":"Hello, Ada!"}`},
		{call{method: "POST", target: "/hello", form: "name=Grace"}, 200, "Hello, Grace!"},
		{call{method: "GET", target: "/hello?name=" + strings.Repeat("a", 257)}, 400, "name is longer than 256 bytes"},
		{call{method: "GET", target: "/hello?name=%01"}, 400, ""},
		{call{method: "DELETE", target: "/hello"}, 405, ""},
	} {
		w := x.serve((*App).Hello, tc.c)
		if w.Code != tc.status || !strings.Contains(w.Body.String(), tc.body) {
			t.Errorf("%s %s: %d %q, want %d %q", tc.c.method, tc.c.target, w.Code, w.Body, tc.status, tc.body)
		}
	}
}

func TestSignInFirst(t *testing.T) {
	x := newTester(t, nil)
	w := x.serve((*App).SignInFirst, call{method: "GET", target: "/private/a?b=c", header: []string{"Accept", "text/html"}})
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/login?next=%2Fprivate%2Fa%3Fb%3Dc" {
		t.Errorf("a browser: %d to %q, want 303 to the login page with next", w.Code, w.Header().Get("Location"))
	}
	w = x.serve((*App).SignInFirst, call{method: "GET", target: "/private/a", header: []string{"Accept", "application/json"}})
	want := `Cookie realm="` + x.a.Realm + `", form-action="/login", cookie-name="miniapp_session"`
	if w.Code != http.StatusUnauthorized || w.Header().Get("WWW-Authenticate") != want {
		t.Errorf("another client: %d with %q, want 401 with %q", w.Code, w.Header().Get("WWW-Authenticate"), want)
	}
}
