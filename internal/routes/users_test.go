package routes

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/users"
)

func TestRules(t *testing.T) {
	x := newTester(t, nil)
	r := httptest.NewRequest("GET", "http://Example.com:8080/login/invite", nil)
	if got := x.a.rules(r); got.Min != 15 || got.Host != "example.com" || got.Realm != x.a.realm || got.Hasher != users.Argon2id {
		t.Errorf("rules = %+v, want 15 characters, the host without its port", got)
	}
	x.a.required = true
	r = httptest.NewRequest("GET", "http://[2001:db8::1]:8080/", nil)
	if got := x.a.rules(r); got.Min != 8 || got.Host != "[2001:db8::1]" {
		t.Errorf("with a second factor required: %+v, want 8 characters", got)
	}
}

func TestInvite(t *testing.T) {
	x := newTester(t, nil)
	html := []string{"Accept", "text/html"}
	w := x.serve((*App).Invite, call{method: "GET", target: "/login/invite", header: html})
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `minlength="15"`) || w.Header().Get("Cache-Control") != "no-store" {
		t.Errorf("the page: %d, want the form asking for 15 characters", w.Code)
	}
	token, err := x.a.Users.Create(context.Background(), "lin", users.Profile{}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		form, want string
		status     int
	}{
		{"password=a+long+and+fine+password", "token and password are required", 400},
		{"token=forged&password=a+long+and+fine+password", "this link is used, expired or not one of ours", 400},
		{"token=" + url.QueryEscape(token) + "&password=short", `value="` + token + `"`, 400},
	} {
		w := x.serve((*App).Invite, call{method: "POST", target: "/login/invite", form: tc.form, header: html})
		if w.Code != tc.status || !strings.Contains(strings.ToLower(w.Body.String()), strings.ToLower(tc.want)) {
			t.Errorf("%s: %d, want %d %q; %s", tc.form, w.Code, tc.status, tc.want, w.Body)
		}
	}
	w = x.serve((*App).Invite, call{method: "POST", target: "/login/invite", form: "token=+" + url.QueryEscape(token) + "+&password=a+long+and+fine+password", header: html})
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/profile" || len(w.Result().Cookies()) == 0 {
		t.Fatalf("the invite (its token pasted with spaces): %d %q", w.Code, w.Body)
	}
	c := w.Result().Cookies()[0]
	for _, tc := range []struct {
		form   string
		status int
	}{
		{"password=wrong&new_password=another+long+fine+password", 403},
		{"password=a+long+and+fine+password&new_password=short", 400},
		{"password=a+long+and+fine+password&new_password=another+long+fine+password", 303},
	} {
		if w := x.serve((*App).ChangePassword, call{method: "POST", target: "/profile/password", form: tc.form, cookie: c}); w.Code != tc.status {
			t.Errorf("%s: %d %q, want %d", tc.form, w.Code, w.Body, tc.status)
		}
	}
}

func TestChangePasswordConfigUser(t *testing.T) {
	x := newTester(t, nil)
	w := x.serve((*App).ChangePassword, call{method: "GET", target: "/profile/password", cookie: x.login(), header: jsonAccept})
	if w.Code != http.StatusConflict || !strings.Contains(w.Body.String(), "managed in the server's config") {
		t.Errorf("a Caddyfile user: %d %q, want 409", w.Code, w.Body)
	}
	if w := x.serve((*App).ChangePassword, call{method: "GET", target: "/profile/password"}); w.Code != http.StatusUnauthorized {
		t.Errorf("without a session: %d, want 401", w.Code)
	}
}
