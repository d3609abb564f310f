package guard

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
)

// throttleClients bounds the clients a throttle remembers, so a
// flood from many addresses cannot grow memory without limit (about
// 100 bytes each).
const throttleClients = 65536

// throttlePool keeps the counts across config reloads that keep the same
// realm and limit.
var throttlePool = caddy.NewUsagePool()

// Throttle counts failed logins per client and refuses a client that
// reached the limit until its window has passed.
type Throttle struct {
	limit      int
	window     time.Duration
	maxClients int
	poolKey    string

	mu      sync.Mutex
	clients map[string]*attempts
}

// attempts is one client's failures in the window that began at start,
// and how many of its attempts are in progress.
type attempts struct {
	start    time.Time
	failures int
	inFlight int
}

// OpenThrottle returns the realm's throttle for this limit, shared with
// the handlers of earlier configs that had the same ones.
func OpenThrottle(realm string, limit int, window time.Duration) (*Throttle, error) {
	key := fmt.Sprintf("%s\x00%d\x00%s", realm, limit, window)
	val, _, err := throttlePool.LoadOrNew(key, func() (caddy.Destructor, error) {
		t := newThrottle(limit, window, throttleClients)
		t.poolKey = key
		return t, nil
	})
	if err != nil {
		return nil, err
	}
	return val.(*Throttle), nil
}

// newThrottle makes a throttle that remembers at most maxClients.
func newThrottle(limit int, window time.Duration, maxClients int) *Throttle {
	return &Throttle{limit: limit, window: window, maxClients: maxClients, clients: make(map[string]*attempts)}
}

// Release gives back this handler's use of the throttle.
func (t *Throttle) Release() error {
	_, err := throttlePool.Delete(t.poolKey)
	return err
}

// Destruct implements caddy.Destructor; the throttle holds only memory.
func (t *Throttle) Destruct() error { return nil }

// ClientKey groups an address with its neighbours that one party
// usually holds: an IPv6 client by its /64, an IPv4 client alone. An
// address that does not parse (a Unix socket) is the empty key, shared.
func ClientKey(ip string) string {
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return ""
	}
	addr = addr.Unmap().WithZone("")
	if addr.Is6() {
		p, _ := addr.Prefix(64)
		return p.String()
	}
	return addr.String()
}

// errLimited is the refusal of a client that has used up its failures
// in the window.
var errLimited = errors.New("too many failed logins; try again later")

// limited reports how long the client must wait when it has used up its
// failures in the window, without reserving anything.
func (t *Throttle) limited(key string, now time.Time) (time.Duration, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	a := t.clients[key]
	if a == nil || !now.Before(a.start.Add(t.window)) || a.failures < t.limit {
		return 0, false
	}
	return a.start.Add(t.window).Sub(now), true
}

// reserve reserves a login attempt for a client (its ClientKey, or a
// device's key). It is refused with errLimited and how long to wait when
// the client has used up its failures in the window. A reserved attempt
// counts as a failure until it is settled, so concurrent attempts cannot
// all pass before the first fails (the slots' lanes run one check per
// client at a time besides).
func (t *Throttle) reserve(key string, now time.Time) (*attempt, time.Duration, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	a := t.clients[key]
	if a != nil && !now.Before(a.start.Add(t.window)) {
		a.start, a.failures = now, 0
	}
	if a == nil {
		if len(t.clients) >= t.maxClients {
			t.evict(now)
		}
		a = &attempts{start: now}
		t.clients[key] = a
	}
	if a.failures >= t.limit {
		return nil, a.start.Add(t.window).Sub(now), errLimited
	}
	a.failures++
	a.inFlight++
	return &attempt{throttle: t, counts: a}, 0, nil
}

// attempt is one reserved login attempt of a client.
type attempt struct {
	throttle *Throttle
	counts   *attempts
}

// done settles the attempt: a failure stays counted; anything else is
// taken back, without resetting the client's earlier failures.
func (at *attempt) done(failed bool) {
	at.throttle.mu.Lock()
	defer at.throttle.mu.Unlock()
	at.counts.inFlight--
	if !failed && at.counts.failures > 0 {
		at.counts.failures--
	}
}

// evict makes room for one client: it drops the first entry it meets
// that is expired or not throttled, so a flood of new addresses cannot
// push a throttled client out while any other entry is left. Map order
// is random, so the choice is too.
func (t *Throttle) evict(now time.Time) {
	var throttled string
	for key, a := range t.clients {
		if a.inFlight == 0 && (!now.Before(a.start.Add(t.window)) || a.failures < t.limit) {
			delete(t.clients, key)
			return
		}
		throttled = key
	}
	delete(t.clients, throttled)
}

// Interface guard
var _ caddy.Destructor = (*Throttle)(nil)
