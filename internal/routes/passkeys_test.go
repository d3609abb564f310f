package routes

import (
	"net/http"
	"strings"
	"testing"
)

func TestManagePasskeys(t *testing.T) {
	off := newTester(t, func(c *Config) { c.Passkeys = false })
	if w := off.serve((*App).ManagePasskeys, call{method: "POST", target: "/profile/passkeys", form: "action=begin", cookie: off.login()}); w.Code != http.StatusNotFound {
		t.Errorf("passkeys off: %d, want 404", w.Code)
	}
	x := newTester(t, nil)
	c := x.loginAt("https://example.com")
	const target = "https://example.com/profile/passkeys"
	for _, tc := range []struct {
		form, want string
		status     int
	}{
		{"action=rename&id=%25%25&name=x", "id must be a passkey ID", 400},
		{"action=rename&id=AAAA", "name is required", 400},
		{"action=delete&id=AAAA", "", 404},
		{"action=other", "action must be begin, rename or delete", 400},
		{"action=begin&current_code=%01", "", 400},
	} {
		w := x.serve((*App).ManagePasskeys, call{method: "POST", target: target, form: tc.form, cookie: c})
		if w.Code != tc.status || !strings.Contains(w.Body.String(), tc.want) {
			t.Errorf("%s: %d %q, want %d %q", tc.form, w.Code, w.Body, tc.status, tc.want)
		}
	}
	w := x.serve((*App).ManagePasskeys, call{method: "POST", target: target, form: "action=begin", cookie: c})
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"challenge"`) || !strings.Contains(w.Body.String(), `"user"`) {
		t.Errorf("begin: %d %q, want the creation options", w.Code, w.Body)
	}
	w = x.serve((*App).ManagePasskeys, call{method: "POST", target: target, form: `{"id":"x"}`, cookie: c, header: []string{"Content-Type", "application/json"}})
	if w.Code != http.StatusBadRequest {
		t.Errorf("a registration's end of nothing: %d %q, want 400", w.Code, w.Body)
	}
	if w := x.serve((*App).ManagePasskeys, call{method: "POST", target: target, form: "action=begin"}); w.Code != http.StatusUnauthorized {
		t.Errorf("without a session: %d, want 401", w.Code)
	}
	if w := x.serve((*App).ManagePasskeys, call{method: "GET", target: target, cookie: c}); w.Code != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d, want 405", w.Code)
	}
}
