package miniapp

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/testport"
	"golang.org/x/crypto/bcrypt"
)

func TestCaddyThrottle(t *testing.T) {
	storage := t.TempDir()
	s := startCaddy(t, storage, "")
	c := s.client()
	ip := []string{"X-Forwarded-For", "198.51.100.20"}
	for i := 0; i < 3; i++ {
		if resp, _ := call(t, c, "POST", httpsBase+"/login", "username=ada&password=wrong", ip...); resp.StatusCode != 401 {
			t.Fatalf("failure %d: %d", i+1, resp.StatusCode)
		}
	}
	resp, _ := call(t, c, "POST", httpsBase+"/login", "username=ada&password="+adaPassword, ip...)
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("right password while throttled: %d Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	// another client, with a cookie jar of its own (a successful login
	// leaves a device cookie, which would let c past its address's limit)
	if resp, _ := call(t, s.client(), "POST", httpsBase+"/login", "username=ada&password="+adaPassword, "X-Forwarded-For", "198.51.100.21"); resp.StatusCode != 303 {
		t.Errorf("another client throttled: %d", resp.StatusCode)
	}
	// a reload with another config keeps the count
	startCaddy(t, storage, "session_lifetime 2h")
	if resp, _ := call(t, c, "POST", httpsBase+"/login", "username=ada&password="+adaPassword, ip...); resp.StatusCode != 429 {
		t.Errorf("throttle lost on reload: %d", resp.StatusCode)
	}
}

// TestCaddyLoginFlood floods logins with wrong passwords from 16 clients
// on rotating addresses, with password checks that take at least 500ms
// (bcrypt cost 13 here; Caddy's default is 14): a browser that signed in
// before (it has a device cookie) still signs in, and a first-time user
// is served while one other client is queued. The latencies are logged
// for BENCHMARKS.md.
func TestCaddyLoginFlood(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: runs a real Caddy")
	}
	// the cheapest cost whose check takes 500ms on this machine, as
	// built (the race detector slows hashing several times): a quarter
	// of the 2s a login waits for a check slot
	var hash []byte
	for cost := 10; cost <= 14 && hash == nil; cost++ {
		start := time.Now()
		h, err := bcrypt.GenerateFromPassword([]byte(adaPassword), cost)
		if err != nil {
			t.Fatal(err)
		}
		if time.Since(start) > 500*time.Millisecond || cost == 14 {
			hash = h
		}
	}
	base := plainSite(t, t.TempDir(), testport.Free(t), true, "user ada "+string(hash))
	login := base + "/login"
	right := "username=ada&password=" + adaPassword
	browser := (&site{t: t}).client()
	if resp, _ := call(t, browser, "POST", login, right); resp.StatusCode != 303 {
		t.Fatalf("first login: %d", resp.StatusCode)
	}
	timed := func(c *http.Client) (int, time.Duration) {
		start := time.Now()
		resp, _ := call(t, c, "POST", login, right)
		return resp.StatusCode, time.Since(start)
	}
	_, check := timed(browser)
	t.Logf("one login without a flood: %v", check)

	flood := func(clients int) (stop func()) {
		done := make(chan struct{})
		var wg sync.WaitGroup
		var n atomic.Int64
		for range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c := &http.Client{Timeout: 10 * time.Second}
				for {
					select {
					case <-done:
						return
					default:
					}
					i := n.Add(1)
					req, _ := http.NewRequest("POST", login, strings.NewReader("username=ada&password=wrong"))
					req.Header.Set("Content-Type", form)
					req.Header.Set("X-Forwarded-For", fmt.Sprintf("198.19.%d.%d", i/250%250, i%250+1))
					if resp, err := c.Do(req); err == nil {
						_, _ = io.Copy(io.Discard, resp.Body)
						_ = resp.Body.Close()
					}
				}
			}()
		}
		time.Sleep(3 * check) // the queue fills
		return func() { close(done); wg.Wait() }
	}

	stop := flood(16)
	served := 0
	for i := range 5 {
		status, took := timed(browser)
		t.Logf("known device, login %d during a flood of 16 clients: %d in %v", i+1, status, took)
		if status == 303 && took < 5*time.Second {
			served++
		}
	}
	status, took := timed((&site{t: t}).client())
	t.Logf("first-time user during a flood of 16 clients: %d in %v", status, took)
	stop()
	if served < 4 {
		t.Errorf("%d of 5 logins from a known device signed in within 5s during the flood, want at least 4", served)
	}

	stop = flood(1)
	status, took = timed((&site{t: t}).client())
	stop()
	t.Logf("first-time user while one other client floods: %d in %v", status, took)
	if status != 303 {
		t.Errorf("first-time user while one other client floods: %d, want 303", status)
	}
}
