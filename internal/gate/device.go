package gate

import (
	"context"
	"net/http"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/account"
	"github.com/caddy-miniapp/miniapp/internal/session"
	"github.com/caddy-miniapp/miniapp/store"
)

// deviceLifetime is how long a browser stays known after its last
// successful login.
const deviceLifetime = 90 * 24 * time.Hour

// A device cookie (OWASP's "device cookie" against brute force) marks a
// browser where an account has signed in before. Its login for that
// account waits in the account's lane of known devices, which takes
// turns with the anonymous lanes, and is counted under the device's own
// failure limit instead of the client address's, so a flood of guesses
// from other clients does not lock a returning user out. It is sealed
// for its own purpose, so neither cookie can stand for the other, and
// carries the account's sign-out counter: a sign out everywhere forgets
// the account's devices too. It stays host-only on the login site
// whatever the cookie domain.

// ownName is the name of one of the gate's own host-only cookies:
// cookie_name with the suffix, __Host- over HTTPS.
func (g *Gate) ownName(wire Wire, suffix string) string {
	if wire.Secure {
		return hostPrefix + g.Name + suffix
	}
	return g.Name + suffix
}

// KnownDevice returns the wire's device cookie when it was issued to
// this browser at a successful login of the named account as it is
// configured now, since its last sign out everywhere, and is among the
// account's newest devices in the store; nil otherwise.
func (g *Gate) KnownDevice(ctx context.Context, wire Wire, name string) *session.Session {
	cookie := g.ownName(wire, "_device")
	value, ok := cookieValue(wire.Cookies, cookie)
	if !ok {
		return nil
	}
	d, err := g.Keys.Open(session.PurposeDevice, value, cookie, wire.Host)
	if err != nil || d.User != name || !g.Clock.Now().Before(d.Expires) {
		return nil
	}
	acct, known := g.Accounts.Lookup(name)
	if !known || d.Account != acct.ID.Tag() {
		return nil
	}
	// the store's counter, as a sign out everywhere long ago may have
	// left this node's memory since
	id := store.AccountID(acct.ID)
	if d.Counter < g.Shared.Counter(ctx, id) || !g.Shared.KnownDevice(ctx, id, d.ID) {
		return nil
	}
	return d
}

// setDevice remembers the browser after a successful login of acct,
// under the account's sign-out counter, keeping the device's ID (and so
// its failure count) when it was known already, and returns it.
func (g *Gate) setDevice(h http.Header, wire Wire, acct *account.Account, counter uint32, known *session.Session) *session.Session {
	d := session.New(acct.Name, acct.ID.Tag(), counter, g.Clock.Now(), deviceLifetime)
	if known != nil {
		d.ID = known.ID
	}
	name := g.ownName(wire, "_device")
	setCookie(h, cookie{name: name, value: g.Keys.Seal(session.PurposeDevice, d, name, wire.Host), maxAge: int(deviceLifetime.Seconds()),
		secure: wire.Secure, sameSite: http.SameSiteStrictMode})
	return d
}
