package gate

import (
	"context"
	"net/http"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/account"
	"github.com/caddy-miniapp/miniapp/internal/session"
	"github.com/caddy-miniapp/miniapp/store"
)

// PendingLifetime bounds a sign-in between its password and its code.
const PendingLifetime = 5 * time.Minute

// A pending sign-in is a password accepted for an account with a
// second factor: a cookie of its own (sealed for its purpose, host-only,
// five minutes, bound to the account and its sign-out counter) carries
// it to the code step.

// SetPending starts the code step of a sign-in of acct whose first
// factor was method (through link, for a provider's).
func (g *Gate) SetPending(ctx context.Context, h http.Header, wire Wire, acct *account.Account, method session.Method, link *account.Link) {
	p := session.New(acct.Name, tagOf(acct, link), g.Shared.Counter(ctx, store.AccountID(acct.ID)), g.Clock.Now(), PendingLifetime)
	p.Method = method
	name := g.ownName(wire, "_pending")
	setCookie(h, cookie{name: name, value: g.Keys.Seal(session.PurposePending, p, name, wire.Host), maxAge: int(PendingLifetime.Seconds()),
		secure: wire.Secure, sameSite: http.SameSiteStrictMode})
}

// ClearPending ends the code step in the browser.
func (g *Gate) ClearPending(h http.Header, wire Wire) {
	setCookie(h, cookie{name: g.ownName(wire, "_pending"), maxAge: -1, secure: wire.Secure, sameSite: http.SameSiteStrictMode})
}

// Pending returns the wire's pending sign-in and its account, or nil: a
// cookie that is forged, expired, used, of a changed or removed account
// or link, or from before the account's last sign out everywhere is
// none.
func (g *Gate) Pending(ctx context.Context, wire Wire) (*session.Session, *account.Account) {
	name := g.ownName(wire, "_pending")
	value, ok := cookieValue(wire.Cookies, name)
	if !ok {
		return nil, nil
	}
	p, err := g.Keys.Open(session.PurposePending, value, name, wire.Host)
	if err != nil || !g.Clock.Now().Truncate(time.Second).Before(p.Expires) || g.Shared.RevokedID(p.ID, p.Expires) {
		return nil, nil
	}
	acct, known := g.Accounts.Lookup(p.User)
	if !known {
		return nil, nil
	}
	if _, holds := Holds(acct, p); !holds || p.Counter < g.Shared.Counter(ctx, store.AccountID(acct.ID)) {
		return nil, nil
	}
	return p, acct
}
