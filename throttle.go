package miniapp

import (
	"context"
	"fmt"
	"net/netip"
	"runtime"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
)

// maxThrottleEntries bounds the clients the throttle remembers, so a
// flood from many addresses cannot grow memory without limit (about
// 100 bytes each).
var maxThrottleEntries = 65536

// throttlePool keeps the counts across config reloads that keep the same
// limit.
var throttlePool = caddy.NewUsagePool()

// Throttle counts failed logins per client and refuses a client that
// reached the limit until its window has passed.
type Throttle struct {
	limit   int
	window  time.Duration
	poolKey string

	mu      sync.Mutex
	clients map[netip.Prefix]*attempts
}

// attempts is one client's failures in the window that began at start.
type attempts struct {
	start    time.Time
	failures int
}

// openThrottle returns the throttle for this limit, shared with the
// handlers of earlier configs that had the same one.
func openThrottle(limit int, window time.Duration) (*Throttle, error) {
	key := fmt.Sprintf("%d/%s", limit, window)
	val, _, err := throttlePool.LoadOrNew(key, func() (caddy.Destructor, error) {
		return &Throttle{limit: limit, window: window, poolKey: key, clients: make(map[netip.Prefix]*attempts)}, nil
	})
	if err != nil {
		return nil, err
	}
	return val.(*Throttle), nil
}

// release gives back this handler's use of the throttle.
func (t *Throttle) release() error {
	_, err := throttlePool.Delete(t.poolKey)
	return err
}

// Destruct implements caddy.Destructor; the throttle holds only memory.
func (t *Throttle) Destruct() error { return nil }

// clientKey groups an address with its neighbours that one party
// usually holds: an IPv6 client by its /64, an IPv4 client alone.
func clientKey(ip string) netip.Prefix {
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return netip.Prefix{}
	}
	addr = addr.Unmap().WithZone("")
	if addr.Is6() {
		p, _ := addr.Prefix(64)
		return p
	}
	return netip.PrefixFrom(addr, 32)
}

// Try reserves a login attempt for the client. It returns how long the
// client must wait when it has used up its failures in the window, and
// otherwise 0, counting the attempt as a failure until Succeeded takes it
// back: concurrent attempts cannot all pass before the first fails.
func (t *Throttle) Try(ip string, now time.Time) time.Duration {
	key := clientKey(ip)
	t.mu.Lock()
	defer t.mu.Unlock()
	a := t.clients[key]
	if a != nil && !now.Before(a.start.Add(t.window)) {
		delete(t.clients, key)
		a = nil
	}
	if a == nil {
		if len(t.clients) >= maxThrottleEntries {
			t.evict(now)
		}
		a = &attempts{start: now}
		t.clients[key] = a
	}
	if a.failures >= t.limit {
		return a.start.Add(t.window).Sub(now)
	}
	a.failures++
	return 0
}

// Succeeded takes back the attempt Try counted, as it was no failure; it
// does not reset the client's earlier failures.
func (t *Throttle) Succeeded(ip string) {
	key := clientKey(ip)
	t.mu.Lock()
	defer t.mu.Unlock()
	if a := t.clients[key]; a != nil && a.failures > 0 {
		a.failures--
	}
}

// evict makes room for one client: it drops the first entry it meets
// that is expired or not throttled, so a flood of new addresses cannot
// push a throttled client out while any other entry is left. Map order
// is random, so the choice is too.
func (t *Throttle) evict(now time.Time) {
	var throttled netip.Prefix
	for key, a := range t.clients {
		if !now.Before(a.start.Add(t.window)) || a.failures < t.limit {
			delete(t.clients, key)
			return
		}
		throttled = key
	}
	delete(t.clients, throttled)
}

// Interface guard
var _ caddy.Destructor = (*Throttle)(nil)

// hashSlots bounds the password checks that run at once, so that a flood
// of logins from many addresses, each within its own limit, takes at most
// half of the CPUs from the rest of the server.
var hashSlots = make(chan struct{}, max(1, runtime.GOMAXPROCS(0)/2))

// maxHashWait is how long a login waits for a free slot before it is
// refused with 429.
var maxHashWait = 2 * time.Second

// acquireHashSlot waits for a slot to check a password, up to
// maxHashWait or the end of the request; release with releaseHashSlot.
func acquireHashSlot(ctx context.Context) bool {
	select {
	case hashSlots <- struct{}{}:
		return true
	default:
	}
	timer := time.NewTimer(maxHashWait)
	defer timer.Stop()
	select {
	case hashSlots <- struct{}{}:
		return true
	case <-timer.C:
	case <-ctx.Done():
	}
	return false
}

func releaseHashSlot() { <-hashSlots }
