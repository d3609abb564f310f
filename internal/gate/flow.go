package gate

import (
	"net/http"
	"strings"
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

// maxFlows bounds the flows a browser holds: a page that starts
// sign-ins again and again must not fill the browser's cookies for the
// site (and every request's Cookie header).
const maxFlows = 3

// SetFlow sends the sealed flow of a sign-in through a provider, under
// its key, and deletes the oldest flows the browser holds beyond
// maxFlows.
func (g *Gate) SetFlow(h http.Header, wire Wire, key, sealed string, lifetime time.Duration) {
	prefix := g.ownName(wire, flowSuffix)
	var held []string
	for _, line := range wire.Cookies {
		for part := range strings.SplitSeq(line, ";") {
			if name, _, ok := strings.Cut(strings.TrimSpace(part), "="); ok && strings.HasPrefix(name, prefix) {
				held = append(held, name)
			}
		}
	}
	// browsers send the cookies of one path oldest first
	for _, name := range held[:max(len(held)-(maxFlows-1), 0)] {
		setCookie(h, cookie{name: name, maxAge: -1, secure: wire.Secure, sameSite: http.SameSiteLaxMode})
	}
	setCookie(h, cookie{name: prefix + key, value: sealed, maxAge: int(lifetime.Seconds()), secure: wire.Secure,
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
