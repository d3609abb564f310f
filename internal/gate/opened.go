package gate

import (
	"hash/maphash"
	"strings"
	"sync"

	"github.com/caddy-miniapp/miniapp/internal/session"
)

// Bounds of the session cookies a gate keeps opened: at most maxOpened,
// each of at most about 2.5 KiB (a value over 2 KiB does not open, and a
// host longer than a DNS name, which a site that answers any host may
// see, is opened every time instead of kept).
const (
	maxOpened     = 4096
	maxOpenedHost = 253
)

// opened keeps what session cookies opened to, by their exact value, name
// and bound host, so that a browser's next request with the same cookie
// skips its base64 and AES-GCM. Only a value that opened is kept: a
// forged or altered one is opened, and refused, each time. A value kept
// is found only with the key ring that opened it (a config reload makes
// a new gate and key ring), so it opens to the same session every time;
// what may change since (expiry, idle time, revocation, the account) is
// checked at every request as for a cookie opened afresh. The sessions
// kept are shared between requests and never changed.
type opened struct {
	mu   sync.RWMutex
	kept map[uint64]openedCookie
}

// openedCookie is a session cookie, the key ring that opened it and the
// session it opened to.
type openedCookie struct {
	value, name, host string
	keys              *session.Keyring
	session           *session.Session
}

// openedSeed seeds the hashes of the values kept.
var openedSeed = maphash.MakeSeed()

// get returns the session the value, sealed for name and host, opened
// to with keys, if it is kept.
func (o *opened) get(keys *session.Keyring, value, name, host string) (*session.Session, bool) {
	o.mu.RLock()
	c, ok := o.kept[maphash.String(openedSeed, value)]
	o.mu.RUnlock()
	if !ok || c.value != value || c.name != name || c.host != host || c.keys != keys {
		return nil, false
	}
	return c.session, true
}

// put keeps what the value opened to with keys; when the gate keeps
// maxOpened already, one of them, any, is forgotten first.
func (o *opened) put(keys *session.Keyring, value, name, host string, s *session.Session) {
	if len(host) > maxOpenedHost {
		return
	}
	c := openedCookie{value: strings.Clone(value), name: name, host: strings.Clone(host), keys: keys, session: s}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.kept == nil {
		o.kept = make(map[uint64]openedCookie)
	}
	if len(o.kept) >= maxOpened {
		for k := range o.kept {
			delete(o.kept, k)
			break
		}
	}
	o.kept[maphash.String(openedSeed, c.value)] = c
}
