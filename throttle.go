package miniapp

import (
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
)

// maxThrottleClients bounds the clients a throttle remembers, so a
// flood from many addresses cannot grow memory without limit (about
// 100 bytes each).
const maxThrottleClients = 65536

// throttlePool keeps the counts across config reloads that keep the same
// realm and limit.
var throttlePool = caddy.NewUsagePool()

// throttle counts failed logins per client and refuses a client that
// reached the limit until its window has passed.
type throttle struct {
	limit      int
	window     time.Duration
	maxClients int
	poolKey    string

	mu      sync.Mutex
	clients map[netip.Prefix]*attempts
}

// attempts is one client's failures in the window that began at start.
type attempts struct {
	start    time.Time
	failures int
}

// openThrottle returns the realm's throttle for this limit, shared with
// the handlers of earlier configs that had the same ones.
func openThrottle(realm string, limit int, window time.Duration) (*throttle, error) {
	key := fmt.Sprintf("%s\x00%d\x00%s", realm, limit, window)
	val, _, err := throttlePool.LoadOrNew(key, func() (caddy.Destructor, error) {
		t := newThrottle(limit, window, maxThrottleClients)
		t.poolKey = key
		return t, nil
	})
	if err != nil {
		return nil, err
	}
	return val.(*throttle), nil
}

// newThrottle makes a throttle that remembers at most maxClients.
func newThrottle(limit int, window time.Duration, maxClients int) *throttle {
	return &throttle{limit: limit, window: window, maxClients: maxClients, clients: make(map[netip.Prefix]*attempts)}
}

// release gives back this handler's use of the throttle.
func (t *throttle) release() error {
	_, err := throttlePool.Delete(t.poolKey)
	return err
}

// Destruct implements caddy.Destructor; the throttle holds only memory.
func (t *throttle) Destruct() error { return nil }

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

// reserve reserves a login attempt for the client. When the client has
// used up its failures in the window it returns nil and how long to
// wait. Otherwise the attempt counts as a failure until it is settled,
// so concurrent attempts cannot all pass before the first fails.
func (t *throttle) reserve(ip string, now time.Time) (*attempt, time.Duration) {
	key := clientKey(ip)
	t.mu.Lock()
	defer t.mu.Unlock()
	a := t.clients[key]
	if a != nil && !now.Before(a.start.Add(t.window)) {
		delete(t.clients, key)
		a = nil
	}
	if a == nil {
		if len(t.clients) >= t.maxClients {
			t.evict(now)
		}
		a = &attempts{start: now}
		t.clients[key] = a
	}
	if a.failures >= t.limit {
		return nil, a.start.Add(t.window).Sub(now)
	}
	a.failures++
	return &attempt{throttle: t, key: key}, 0
}

// attempt is one reserved login attempt of a client.
type attempt struct {
	throttle *throttle
	key      netip.Prefix
}

// done settles the attempt: a failure stays counted; anything else is
// taken back, without resetting the client's earlier failures.
func (at *attempt) done(failed bool) {
	if failed {
		return
	}
	t := at.throttle
	t.mu.Lock()
	defer t.mu.Unlock()
	if a := t.clients[at.key]; a != nil && a.failures > 0 {
		a.failures--
	}
}

// evict makes room for one client: it drops the first entry it meets
// that is expired or not throttled, so a flood of new addresses cannot
// push a throttled client out while any other entry is left. Map order
// is random, so the choice is too.
func (t *throttle) evict(now time.Time) {
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
var _ caddy.Destructor = (*throttle)(nil)
