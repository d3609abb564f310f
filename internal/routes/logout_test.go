package routes

import (
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// session is the session a cookie opens, nil when it opens none.
func (x *tester) session(c *http.Cookie) [16]byte {
	x.t.Helper()
	r := httptest.NewRequest("GET", "/profile", nil)
	r.AddCookie(c)
	s, _ := x.a.Gate.Open(WireOf(r), false)
	if s == nil {
		return [16]byte{}
	}
	return s.ID
}

func TestLogout(t *testing.T) {
	x := newTester(t, nil)
	first, second := x.login(), x.login()
	w := x.serve((*App).Logout, call{method: "POST", target: "/logout", form: "next=%2Fbye", cookie: first})
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/bye" || !strings.Contains(w.Header().Get("Set-Cookie"), "Max-Age=0") {
		t.Errorf("logout: %d to %q, %q; want 303 to next, the cookie cleared", w.Code, w.Header().Get("Location"), w.Header().Get("Set-Cookie"))
	}
	if x.session(first) != [16]byte{} || x.session(second) == [16]byte{} {
		t.Error("logout ended another session than its own")
	}
	if !x.counts.has("logout") {
		t.Error("the logout was not counted")
	}
	third := x.login()
	x.serve((*App).Logout, call{method: "POST", target: "/logout", form: "all=1", cookie: third})
	if x.session(second) != [16]byte{} {
		t.Error("all=1 left another session of the user")
	}
}

func TestLogoutRefuses(t *testing.T) {
	x := newTester(t, nil)
	c := x.login()
	for _, tc := range []struct {
		c      call
		status int
	}{
		{call{method: "GET", target: "/logout", cookie: c}, 405},
		{call{method: "POST", target: "/logout", form: "session=zz", cookie: c}, 400},
		{call{method: "POST", target: "/logout", cookie: c, header: []string{"Sec-Fetch-Site", "cross-site"}}, 403},
		{call{method: "POST", target: "/logout", form: "session=" + strings.Repeat("ab", 16), cookie: c}, 404},
	} {
		if w := x.serve((*App).Logout, tc.c); w.Code != tc.status {
			t.Errorf("%s %s %s: %d, want %d", tc.c.method, tc.c.target, tc.c.form, w.Code, tc.status)
		}
	}
	if x.session(c) == [16]byte{} {
		t.Error("a refused logout ended the session")
	}
}

func TestLogoutPage(t *testing.T) {
	x := newTester(t, func(c *Config) { c.CookieDomain, c.LoginURL = "example.com", "https://login.example.com/login" })
	w := x.serve((*App).Logout, call{method: "GET", target: "/logout?next=https%3A%2F%2Fapp.example.com%2F", header: []string{"Accept", "text/html"}})
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `value="https://app.example.com/"`) {
		t.Errorf("cookie_domain: GET /logout: %d, want the page whose form goes on to next; %s", w.Code, w.Body)
	}
}

func TestEndOther(t *testing.T) {
	x := newTester(t, nil)
	mine, other := x.login(), x.login()
	id := x.session(other)
	w := x.serve((*App).Logout, call{method: "POST", target: "/logout", form: "session=" + hex.EncodeToString(id[:]), cookie: mine})
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/profile" {
		t.Errorf("ending another session: %d to %q, want 303 /profile", w.Code, w.Header().Get("Location"))
	}
	if x.session(other) != [16]byte{} || x.session(mine) == [16]byte{} {
		t.Error("the other session was not ended, or this one was")
	}
	w = x.serve((*App).Logout, call{method: "POST", target: "/logout", form: "session=" + hex.EncodeToString(id[:]), header: []string{"Accept", "text/html"}})
	if w.Code != http.StatusSeeOther || !strings.HasPrefix(w.Header().Get("Location"), "/login") {
		t.Errorf("without a session: %d to %q, want to the login page", w.Code, w.Header().Get("Location"))
	}
}
