//go:build load

package miniapp

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"
)

// TestLoadThroughReloads keeps /profile busy from 8 clients for about 40
// seconds while Caddy is reloaded every 5 seconds and sessions are made
// and logged out all along: no request may fail and no logout may be
// undone. It runs with `go test -tags load -run TestLoadThroughReloads`
// (.ci/run does).
func TestLoadThroughReloads(t *testing.T) {
	n := newNode(t, t.TempDir())
	n.start()
	n.ready()
	kept := loginOn(t, n)

	load := startProfileLoad(n, kept, 8)
	stop := make(chan struct{})
	var wg sync.WaitGroup

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
		n.reload(fmt.Sprintf("reload %d", i))
	}
	close(stop)
	wg.Wait()
	load.stop()

	if load.failures.Load() != 0 {
		t.Errorf("%d of %d /profile requests failed; first: %v", load.failures.Load(), load.requests.Load(), load.firstFailure.Load())
	}
	mu.Lock()
	defer mu.Unlock()
	for _, c := range loggedOut {
		if got := profileStatus(t, n, c); got != 401 {
			t.Errorf("a logout was undone by the reloads: %d", got)
		}
	}
	t.Logf("%d /profile requests through 8 reloads, %d sessions logged out and still refused", load.requests.Load(), len(loggedOut))
}
