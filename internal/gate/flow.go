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

// flowSuffix ends the flow cookie's name.
const flowSuffix = "_with"

// SetFlow sends the sealed flow of a sign-in through a provider.
func (g *Gate) SetFlow(h http.Header, wire Wire, sealed string, lifetime time.Duration) {
	setCookie(h, cookie{name: g.ownName(wire, flowSuffix), value: sealed, maxAge: int(lifetime.Seconds()), secure: wire.Secure,
		sameSite: http.SameSiteLaxMode})
}

// TakeFlow returns the wire's sealed flow ("" for none) and deletes the
// cookie: a flow is read once.
func (g *Gate) TakeFlow(h http.Header, wire Wire) string {
	name := g.ownName(wire, flowSuffix)
	value, _ := cookieValue(wire.Cookies, name)
	setCookie(h, cookie{name: name, maxAge: -1, secure: wire.Secure, sameSite: http.SameSiteLaxMode})
	return value
}
