package gate

import (
	"net/http"
	"time"
)

// A sign-in through another provider carries its flow (sealed by the
// provider's service) in a cookie of its own from its start to the
// provider's callback: host-only, ten minutes, and SameSite=Lax, so
// that it comes back on the provider's cross-site redirect (the gate's
// other cookies are Strict or only read on this site's own requests).

// Each flow has a cookie of its own, named by its key (the start of its
// state): sign-ins started in several tabs do not undo each other.

// flowSuffix ends the flow cookies' names, before the flow's key.
const flowSuffix = "_with_"

// SetFlow sends the sealed flow of a sign-in through a provider, under
// its key.
func (g *Gate) SetFlow(h http.Header, wire Wire, key, sealed string, lifetime time.Duration) {
	setCookie(h, cookie{name: g.ownName(wire, flowSuffix+key), value: sealed, maxAge: int(lifetime.Seconds()), secure: wire.Secure,
		sameSite: http.SameSiteLaxMode})
}

// TakeFlow returns the wire's sealed flow of the key ("" for none) and
// deletes its cookie: a flow is read once.
func (g *Gate) TakeFlow(h http.Header, wire Wire, key string) string {
	name := g.ownName(wire, flowSuffix+key)
	value, ok := cookieValue(wire.Cookies, name)
	if ok {
		setCookie(h, cookie{name: name, maxAge: -1, secure: wire.Secure, sameSite: http.SameSiteLaxMode})
	}
	return value
}
