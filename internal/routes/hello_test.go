package routes

import (
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
