package miniapp

import (
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/caddyauth"
)

// TestConcurrentSessions hits login, profile and logout from 64
// goroutines against one handler for a few seconds: every profile shows
// its own user, every logout is in force at once (run with -race).
func TestConcurrentSessions(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for seconds")
	}
	// logins queue for the password-check slots; under -race on two
	// cores the queue may be long, and this test is not about it
	var accounts []caddyauth.Account
	for i := range 8 {
		accounts = append(accounts, caddyauth.Account{Username: fmt.Sprintf("user%d", i), Password: adaHash})
	}
	a := newApp(t, "", func(h *Handler) {
		h.Accounts = accounts
		h.checks = newHashLimit(1, time.Minute)
		h.LoginLimit = &LoginLimit{Failures: 1 << 20, Window: caddy.Duration(time.Minute)}
	})
	deadline := time.Now().Add(3 * time.Second)
	var rounds atomic.Int64
	var wg sync.WaitGroup
	for g := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			user := fmt.Sprintf("user%d", g%8)
			for time.Now().Before(deadline) {
				w := a.do(request{method: "POST", target: "/login", contentType: form, body: "username=" + user + "&password=" + adaPassword, https: g%2 == 0})
				if w.Code != 303 {
					t.Errorf("%s login: %d", user, w.Code)
					return
				}
				c := w.Result().Cookies()[0]
				w = a.do(request{target: "/profile", accept: "application/json", cookie: c, https: g%2 == 0})
				var out struct{ Username string }
				if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil || out.Username != user {
					t.Errorf("%s sees profile %q (%d)", user, out.Username, w.Code)
					return
				}
				if w := a.do(request{method: "POST", target: "/logout", cookie: c, https: g%2 == 0}); w.Code != 303 {
					t.Errorf("%s logout: %d", user, w.Code)
					return
				}
				if w := a.do(request{target: "/profile", cookie: c, https: g%2 == 0}); w.Code != 401 {
					t.Errorf("%s after logout: %d", user, w.Code)
					return
				}
				rounds.Add(1)
			}
		}()
	}
	wg.Wait()
	if rounds.Load() < 64 {
		t.Errorf("only %d rounds in all", rounds.Load())
	}
	t.Logf("%d login-profile-logout rounds", rounds.Load())
}
