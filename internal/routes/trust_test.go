package routes

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestTrustFor(t *testing.T) {
	for d, want := range map[time.Duration]string{0: "", 24 * time.Hour: "1 day", 30 * 24 * time.Hour: "30 days", 36 * time.Hour: "36h0m0s"} {
		if got := (&App{remember: d}).trustFor(); got != want {
			t.Errorf("trustFor(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestUntrust(t *testing.T) {
	x := newTester(t, func(c *Config) { c.Remember = 30 * 24 * time.Hour })
	c := x.login()
	for _, tc := range []struct {
		form, want string
		status     int
	}{
		{"id=zz", "id must be a trusted browser's ID of 32 hex digits", 400},
		{"id=" + strings.Repeat("ab", 16), "no such trusted browser of yours", 404},
	} {
		w := x.serve((*App).Untrust, call{method: "POST", target: "/profile/trust", form: tc.form, cookie: c})
		if w.Code != tc.status || !strings.Contains(w.Body.String(), tc.want) {
			t.Errorf("%s: %d %q, want %d %q", tc.form, w.Code, w.Body, tc.status, tc.want)
		}
	}
	if w := x.serve((*App).Untrust, call{method: "POST", target: "/profile/trust", form: "id=" + strings.Repeat("ab", 16)}); w.Code != http.StatusUnauthorized {
		t.Errorf("without a session: %d, want 401", w.Code)
	}
	if w := x.serve((*App).Untrust, call{method: "GET", target: "/profile/trust", cookie: c}); w.Code != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d, want 405", w.Code)
	}
}

func TestAppendTrusts(t *testing.T) {
	if got := appendTrusts(nil, nil); len(got) != 0 {
		t.Errorf("no trusts: %q, want nothing", got)
	}
}
