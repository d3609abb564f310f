//go:build load

package miniapp

import (
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestLoadThroughReloads keeps /profile busy from 8 clients for about 40
// seconds while Caddy is reloaded every 5 seconds and sessions are made
// and logged out all along: no request may fail and no logout may be
// undone. It runs with `go test -tags load -run TestLoadThroughReloads`
// (.ci/run does).
func TestLoadThroughReloads(t *testing.T) {
	n := newNode(t, 9286, 2987, t.TempDir())
	n.start()
	n.ready()
	kept := loginOn(t, n)

	stop := make(chan struct{})
	var requests, failures atomic.Int64
	var firstFailure atomic.Value
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := h2cClient()
			for {
				select {
				case <-stop:
					return
				default:
				}
				req, _ := http.NewRequest("GET", n.url("/profile"), nil)
				req.AddCookie(kept)
				resp, err := client.Do(req)
				requests.Add(1)
				if err != nil {
					failures.Add(1)
					firstFailure.CompareAndSwap(nil, err.Error())
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failures.Add(1)
					firstFailure.CompareAndSwap(nil, resp.Status)
				}
			}
		}()
	}

	// sessions made and logged out all along, each checked at once
	var loggedOut []*http.Cookie
	var mu sync.Mutex
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			c := loginOn(t, n)
			logoutOn(t, n, c)
			if got := profileStatus(t, n, c); got != 401 {
				t.Errorf("logged-out cookie answered %d", got)
			}
			mu.Lock()
			loggedOut = append(loggedOut, c)
			mu.Unlock()
		}
	}()

	for i := range 8 {
		time.Sleep(5 * time.Second)
		n.writeConfig(fmt.Sprintf("reload %d", i))
		out, err := exec.Command(buildCaddy(t), "reload", "--config", n.config, "--adapter", "caddyfile",
			"--address", fmt.Sprintf("localhost:%d", n.admin)).CombinedOutput()
		if err != nil {
			t.Fatalf("reload %d: %v\n%s", i, err, out)
		}
	}
	close(stop)
	wg.Wait()

	if failures.Load() != 0 {
		t.Errorf("%d of %d /profile requests failed; first: %v", failures.Load(), requests.Load(), firstFailure.Load())
	}
	mu.Lock()
	defer mu.Unlock()
	for _, c := range loggedOut {
		if got := profileStatus(t, n, c); got != 401 {
			t.Errorf("a logout was undone by the reloads: %d", got)
		}
	}
	t.Logf("%d /profile requests through 8 reloads, %d sessions logged out and still refused", requests.Load(), len(loggedOut))
}
