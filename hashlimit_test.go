package miniapp

import (
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
)

// TestHashSlots: while every password-check slot is taken, a login waits
// for one, then is refused with 429; a freed slot lets it through.
func TestHashSlots(t *testing.T) {
	checks := newHashLimit(2, 500*time.Millisecond)
	// with a limit of one failure, a refusal counted as a failure would
	// throttle the login that follows it
	a := newApp(t, "", func(h *Handler) {
		h.LoginLimit = &LoginLimit{Failures: 1, Window: caddy.Duration(time.Minute)}
		h.checks = checks
	})
	for range cap(checks.slots) {
		checks.slots <- struct{}{}
	}
	w := a.do(request{method: "POST", target: "/login", contentType: form, body: "username=ada&password=" + adaPassword})
	if w.Code != 429 || w.Header().Get("Retry-After") != "1" || len(w.Result().Cookies()) != 0 {
		t.Errorf("with every slot taken: %d Retry-After %q", w.Code, w.Header().Get("Retry-After"))
	}
	go func() {
		time.Sleep(20 * time.Millisecond)
		checks.release()
	}()
	if w := a.do(request{method: "POST", target: "/login", contentType: form, body: "username=ada&password=" + adaPassword}); w.Code != 303 {
		t.Errorf("after a slot was freed: %d", w.Code)
	}
	for range cap(checks.slots) - 1 {
		checks.release()
	}
}
