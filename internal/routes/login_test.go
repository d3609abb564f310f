package routes

import (
	"net/http"
	"strings"
	"testing"
)

func TestLogin(t *testing.T) {
	x := newTester(t, nil)
	html := []string{"Accept", "text/html"}
	w := x.serve((*App).Login, call{method: "POST", target: "/login", form: "username=ada&password=wrong", header: html})
	if w.Code != http.StatusUnauthorized || !strings.Contains(w.Body.String(), `value="ada"`) || w.Header().Get("WWW-Authenticate") == "" {
		t.Errorf("a wrong password: %d, want 401, the form again with the name, a challenge; %s", w.Code, w.Body)
	}
	if !x.counts.has("login failure") {
		t.Error("a wrong password was not counted")
	}
	w = x.serve((*App).Login, call{method: "POST", target: "/login", form: "username=ada&password=" + adaPassword,
		header: []string{"Accept", "application/json"}})
	if w.Code != http.StatusOK || w.Body.String() != `{"username":"ada"}` {
		t.Errorf("JSON: %d %q", w.Code, w.Body)
	}
	for next, want := range map[string]string{"%2Fprivate%2Fx": "/private/x", "https%3A%2F%2Fevil.example%2F": "/profile", "": "/profile"} {
		w = x.serve((*App).Login, call{method: "POST", target: "/login?next=" + next, form: "username=ada&password=" + adaPassword, header: html})
		if w.Code != http.StatusSeeOther || w.Header().Get("Location") != want {
			t.Errorf("next=%s: %d to %q, want 303 to %q", next, w.Code, w.Header().Get("Location"), want)
		}
	}
}

func TestLoginRefuses(t *testing.T) {
	x := newTester(t, nil)
	for _, tc := range []struct {
		form, want string
		status     int
	}{
		{"username=ada", "username and password are required", 400},
		{"code=123456", "the sign-in has expired; sign in again", 401},
		{"username=ada&password=x&code=" + strings.Repeat("1", 33), "code is too long", 400},
		{"username=" + strings.Repeat("a", 2000) + "&password=x", "too long", 400},
	} {
		w := x.serve((*App).Login, call{method: "POST", target: "/login", form: tc.form})
		if w.Code != tc.status || !strings.Contains(w.Body.String(), tc.want) {
			t.Errorf("%.40s: %d %q, want %d %q", tc.form, w.Code, w.Body, tc.status, tc.want)
		}
	}
	// the code form needs a pending sign-in's cookie
	w := x.serve((*App).Login, call{method: "GET", target: "/login?step=code", header: []string{"Accept", "text/html"}})
	if w.Code != http.StatusOK || strings.Contains(w.Body.String(), `name="code"`) {
		t.Errorf("step=code without a pending sign-in: %d, want the password form", w.Code)
	}
}

func TestLoginPasskey(t *testing.T) {
	off := newTester(t, func(c *Config) { c.Passkeys = false })
	if w := off.serve((*App).LoginPasskey, call{method: "POST", target: "/login/passkey", form: "action=begin"}); w.Code != http.StatusNotFound {
		t.Errorf("passkeys off: %d, want 404", w.Code)
	}
	x := newTester(t, nil)
	w := x.serve((*App).LoginPasskey, call{method: "POST", target: "https://example.com/login/passkey", form: "action=begin"})
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"challenge"`) || w.Header().Get("Cache-Control") != "no-store" {
		t.Errorf("begin: %d %q, want 200 with a challenge, not stored", w.Code, w.Body)
	}
	if w := x.serve((*App).LoginPasskey, call{method: "POST", target: "https://example.com/login/passkey", form: "action=other"}); w.Code != http.StatusBadRequest {
		t.Errorf("another action: %d, want 400", w.Code)
	}
	w = x.serve((*App).LoginPasskey, call{method: "POST", target: "https://example.com/login/passkey", form: "{}", header: []string{"Content-Type", "application/json"}})
	if w.Code != http.StatusBadRequest {
		t.Errorf("an assertion of nothing: %d %q, want 400", w.Code, w.Body)
	}
}
