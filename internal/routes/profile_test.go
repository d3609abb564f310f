package routes

import (
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/gate"
	"github.com/caddy-miniapp/miniapp/internal/session"
	"github.com/caddy-miniapp/miniapp/internal/signin"
)

func TestProfile(t *testing.T) {
	x := newTester(t, nil)
	c := x.login()
	x.login()
	w := x.serve((*App).Profile, call{method: "GET", target: "/profile", cookie: c, header: []string{"Accept", "application/json"}})
	var p struct {
		Username string `json:"username"`
		Sessions []any  `json:"sessions"`
		Factors  int    `json:"factors"`
		Passkeys []any  `json:"passkeys"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil || w.Code != http.StatusOK {
		t.Fatalf("JSON: %d %v %s", w.Code, err, w.Body)
	}
	if p.Username != "ada" || len(p.Sessions) != 2 || p.Factors != 1 || p.Passkeys == nil {
		t.Errorf("JSON: %+v, want ada, both sessions, one factor, a passkeys list", p)
	}
	w = x.serve((*App).Profile, call{method: "GET", target: "/profile", cookie: c, header: []string{"Accept", "text/html"}})
	body := w.Body.String()
	if w.Code != http.StatusOK || !strings.Contains(body, "ada") || !strings.Contains(body, `name="session"`) ||
		w.Header().Get("Cache-Control") != "no-store" {
		t.Errorf("page: %d %q", w.Code, body)
	}
	if strings.Contains(body, "Change your password") || !strings.Contains(body, "managed in the server's config") {
		t.Error("a Caddyfile user's page offers to change the password")
	}
	if w := x.serve((*App).Profile, call{method: "GET", target: "/profile", header: []string{"Accept", "text/html"}}); w.Code != http.StatusSeeOther {
		t.Errorf("without a session: %d, want 303 to the login page", w.Code)
	}
	if w := x.serve((*App).Profile, call{method: "POST", target: "/profile", cookie: c}); w.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d, want 405", w.Code)
	}
}

func TestProfileKept(t *testing.T) {
	x := newTester(t, nil)
	a, b := x.login(), x.login()
	page := func(c *http.Cookie) string {
		return x.serve((*App).Profile, call{method: "GET", target: "/profile", cookie: c, header: []string{"Accept", "text/html"}}).Body.String()
	}
	idA, idB := x.session(a), x.session(b)
	first := page(a)
	if page(a) != first {
		t.Fatal("the same page twice without a change differs")
	}
	// a page is its own session's: each lists the other to sign out
	if !strings.Contains(first, hex.EncodeToString(idB[:])) || strings.Contains(first, `value="`+hex.EncodeToString(idA[:])) {
		t.Error("A's page does not offer to end B alone")
	}
	if second := page(b); !strings.Contains(second, hex.EncodeToString(idA[:])) || strings.Contains(second, `value="`+hex.EncodeToString(idB[:])) {
		t.Error("B was shown A's page")
	}
	// any change of the realm shows at once
	x.login()
	if n := strings.Count(page(a), `name="session"`); n != 2 {
		t.Errorf("after another sign-in the page lists %d other sessions, want 2", n)
	}
	x.serve((*App).Logout, call{method: "POST", target: "/logout", cookie: b})
	if strings.Contains(page(a), hex.EncodeToString(idB[:])) {
		t.Error("a session signed out is still listed")
	}
}

// TestKeepUntil: a page is kept pageFresh at most, never past its
// session's expiry nor past the end of its recent sign-in, when the
// step-up fields it shows change.
func TestKeepUntil(t *testing.T) {
	a := &App{}
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		issued, expires, want time.Time
	}{
		{now.Add(-time.Hour), now.Add(time.Hour), now.Add(pageFresh)},
		{now.Add(-time.Hour), now.Add(3 * time.Second), now.Add(3 * time.Second)},
		{now.Add(-signin.RecentSignIn + 4*time.Second), now.Add(time.Hour), now.Add(4 * time.Second)},
		{now.Add(-time.Minute), now.Add(time.Hour), now.Add(pageFresh)},
		{now.Add(-signin.RecentSignIn), now.Add(time.Hour), now},
	} {
		sess := &gate.Session{Session: &session.Session{Issued: tc.issued, Expires: tc.expires}}
		if got := a.keepUntil(sess, now); !got.Equal(tc.want) {
			t.Errorf("issued %v, expires %v: kept until %v, want %v", tc.issued, tc.expires, got, tc.want)
		}
	}
}
