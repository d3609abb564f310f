package gate

import (
	"net/http"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/account"
	"github.com/caddy-miniapp/miniapp/internal/session"
)

// A browser trusted for the second factor carries a cookie of its own
// (<cookie_name>_trust, host-only, sealed for its own purpose,
// SameSite=Lax) for one account: its name, its stable ID's tag and the
// trust's ID, which the account's record must still hold.

// trustSuffix ends the trust cookie's name.
const trustSuffix = "_trust"

// SetTrust sends the cookie of a new trust of acct, good for lifetime,
// and returns the trust's ID.
func (g *Gate) SetTrust(h http.Header, wire Wire, acct *account.Account, lifetime time.Duration) *session.Session {
	t := session.New(acct.Name, acct.Stable.Tag(), 0, g.Clock.Now(), lifetime)
	name := g.ownName(wire, trustSuffix)
	setCookie(h, cookie{name: name, value: g.Keys.Seal(session.PurposeTrust, t, name, wire.Host), maxAge: int(lifetime.Seconds()),
		secure: wire.Secure, sameSite: http.SameSiteLaxMode})
	return t
}

// TrustOf is the wire's trust cookie when it is of acct (another site,
// realm or account's never opens as one) and not expired; nil
// otherwise. Whether the trust still holds is the account's record's to
// say.
func (g *Gate) TrustOf(wire Wire, acct *account.Account) *session.Session {
	name := g.ownName(wire, trustSuffix)
	value, ok := cookieValue(wire.Cookies, name)
	if !ok {
		return nil
	}
	t, err := g.Keys.Open(session.PurposeTrust, value, name, wire.Host)
	if err != nil || t.User != acct.Name || t.Account != acct.Stable.Tag() || !g.Clock.Now().Before(t.Expires) {
		return nil
	}
	return t
}
