// Package gate is the session on the wire: the session cookie (opened
// with every check of a request, renewed, started, ended), the device
// cookie that marks a browser where an account signed in before, and
// the pending sign-in's cookie between a password and its code. It
// knows cookies, the key ring, the accounts and the store's revocations;
// not routes, pages or how a sign-in is decided.
package gate

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/account"
	"github.com/caddy-miniapp/miniapp/internal/session"
	"github.com/caddy-miniapp/miniapp/store"
)

// hostPrefix makes browsers accept the cookie only when it is Secure,
// has Path=/ and no Domain, so no subdomain can set or overwrite it.
const hostPrefix = "__Host-"

// Gate is a handler's cookies.
type Gate struct {
	// Keys seal and open every cookie, each for its own purpose.
	Keys *session.Keyring
	// Shared is the realm's shared state: revocations, counters, the
	// session index, known devices.
	Shared *store.Realm
	// Accounts are the handler's accounts; Guests, when set, gives the
	// account of a guest's session while the config admits it.
	Accounts *account.Set
	Guests   func(*session.Session) (*account.Account, bool)
	// Clock is the handler's clock.
	Clock *session.Clock
	// Name is cookie_name.
	Name string
	// Domain is cookie_domain and login_url.
	Domain Domain
	// Lifetime and Idle are session_lifetime and idle_timeout.
	Lifetime, Idle time.Duration

	opened opened
}

// Wire is what the gate reads of a request: its Cookie header lines,
// whether it came over HTTPS, and its host without port.
type Wire struct {
	Cookies []string
	Secure  bool
	Host    string
}

// Session is a request's valid session with its account.
type Session struct {
	*session.Session
	Account *account.Account
	// Link is the account's link a session begun through a provider is
	// bound to; nil for any other.
	Link *account.Link
}

// CookieName is the session cookie's name for the wire: with the
// __Host- prefix over HTTPS; with a cookie domain, the one name of the
// whole domain.
func (g *Gate) CookieName(wire Wire) string {
	switch {
	case g.Domain.Name != "":
		return g.Domain.Cookie
	case wire.Secure:
		return hostPrefix + g.Name
	}
	return g.Name
}

// Covers reports whether the session cookie belongs to host: a host of
// the cookie domain, or without one, the request's own.
func (g *Gate) Covers(wire Wire, host string) bool {
	if g.Domain.Name != "" {
		return UnderDomain(host, g.Domain.Name)
	}
	return strings.EqualFold(host, wire.Host)
}

// UnderDomain reports whether host is the domain or a subdomain of it.
func UnderDomain(host, domain string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	return host == domain || strings.HasSuffix(host, "."+domain)
}

// bound is what the session cookie is bound to besides its name: the
// cookie domain, or else the request's host.
func (g *Gate) bound(wire Wire) string {
	if g.Domain.Name != "" {
		return g.Domain.Name
	}
	return wire.Host
}

// Refusal is why a session cookie is no session, for the metrics:
// "malformed", "expired" or "revoked"; empty when there was none.
type Refusal string

// Open returns the wire's valid session, or nil with why: a cookie that
// is missing, forged, altered, expired (absolutely or idle), revoked or
// of a removed user is no session at all. With a cookie domain, a
// request of a host outside it has none, unless anyHost (the auth
// endpoint, which checks the host of the request it was forwarded).
func (g *Gate) Open(wire Wire, anyHost bool) (*Session, Refusal) {
	name := g.CookieName(wire)
	value, ok := cookieValue(wire.Cookies, name)
	if !ok {
		return nil, ""
	}
	host := g.bound(wire)
	s, kept := g.opened.get(g.Keys, value, name, host)
	if !kept {
		var err error
		if s, err = g.Keys.Open(session.PurposeSession, value, name, host); err != nil {
			return nil, "malformed"
		}
		g.opened.put(g.Keys, value, name, host, s)
	}
	now := g.Clock.Now()
	if !s.Live(now, g.Lifetime, g.Idle) {
		// /miniapp/auth may have kept the idle window open server-side
		used := *s
		used.LastSeen = g.usedSince(s)
		if !used.LastSeen.After(s.LastSeen) || !used.Live(now, g.Lifetime, g.Idle) {
			return nil, "expired"
		}
	}
	if g.Domain.Name != "" && !anyHost && !UnderDomain(wire.Host, g.Domain.Name) {
		return nil, "malformed"
	}
	acct, known := g.Accounts.Lookup(s.User)
	if !known && s.Guest != nil && g.Guests != nil {
		acct, known = g.Guests(s)
	}
	if !known {
		return nil, "revoked"
	}
	link, holds := Holds(acct, s)
	if !holds || g.Shared.Revoked(store.AccountID(acct.ID), s.ID, s.Expires, s.Counter, s.Generation) {
		return nil, "revoked"
	}
	return &Session{Session: s, Account: acct, Link: link}, ""
}

// Holds reports whether a session (or a pending sign-in) is bound to
// acct as configured now: to its ID, or, for one begun through a
// provider the account is linked to, to that link, which it returns.
func Holds(acct *account.Account, s *session.Session) (*account.Link, bool) {
	if s.Method != session.MethodProvider || s.Guest != nil {
		return nil, s.Account == acct.ID.Tag()
	}
	l, ok := acct.LinkOf(s.Account)
	return &l, ok
}

// tagOf is what a new session (or pending sign-in) of acct is bound to:
// the link it began through, or the account's ID.
func tagOf(acct *account.Account, link *account.Link) account.Tag {
	if link != nil {
		return acct.LinkTag(*link)
	}
	return acct.ID.Tag()
}

// usedSince is the session's time of last use: its cookie's, or a later
// one recorded by the auth endpoint.
func (g *Gate) usedSince(s *session.Session) time.Time {
	if used := g.Shared.LastUse(s.ID, s.Expires); used.After(s.LastSeen) {
		return used
	}
	return s.LastSeen
}

// Renew sends the cookie again with a new time of last use once less
// than half of the idle window is left, so an active session does not
// lapse; its absolute expiry stays.
func (g *Gate) Renew(h http.Header, wire Wire, s *Session) {
	renewed := s.Renewed(g.Clock.Now(), g.Idle)
	if renewed == nil {
		return
	}
	g.setSession(h, wire, renewed)
	// no shared cache may keep a response that carries a session cookie
	h.Set("Cache-Control", "no-store")
}

// KeepAlive records the session's use when its idle window is half
// gone, for the auth endpoint, whose answers' headers never reach the
// browser: at most one store write per session per half idle window.
func (g *Gate) KeepAlive(ctx context.Context, s *Session) {
	g.Shared.KeepAlive(ctx, s.ID, s.Expires, s.LastSeen, g.Clock.Now().Truncate(time.Second), g.Idle/2)
}

// Client is who a new session is for: the client's address, its
// User-Agent header (named with DeviceName only where it is shown), and
// its device cookie for the account (nil: none).
type Client struct {
	IP, UserAgent string
	Known         *session.Session
	// Guest is what a guest's provider said, for a guest's session;
	// Link is the account's link a linked user signed in through; Via
	// names the provider of either, for the sessions list.
	Guest *session.Guest
	Link  *account.Link
	Via   string
}

// Start starts a session of the account with the factors it began with:
// recorded in the store's index, sent as the cookie, and the browser
// remembered as a device of the account (a guest's browser is not: a
// guest has no password to throttle).
func (g *Gate) Start(ctx context.Context, h http.Header, wire Wire, acct *account.Account, client Client, factors uint8, method session.Method) *Session {
	id := store.AccountID(acct.ID)
	counter := g.Shared.Counter(ctx, id)
	s := session.New(acct.Name, tagOf(acct, client.Link), counter, g.Clock.Now(), g.Lifetime)
	s.Generation, s.Factors, s.Method, s.Guest = g.Shared.Generation(), factors, method, client.Guest
	g.Shared.Login(ctx, store.Entry{ID: s.ID, Account: id, Counter: s.Counter, Started: s.Issued, Expires: s.Expires,
		Generation: s.Generation, Factors: s.Factors, Address: client.IP, Device: DeviceName(client.UserAgent), Via: client.Via})
	g.setSession(h, wire, s)
	if client.Guest == nil {
		device := g.setDevice(h, wire, acct, counter, client.Known)
		g.Shared.AddDevice(ctx, id, device.ID, device.Expires)
	}
	return &Session{Session: s, Account: acct, Link: client.Link}
}

// setSession sends the sealed session, kept by the browser until the
// session expires.
func (g *Gate) setSession(h http.Header, wire Wire, s *session.Session) {
	name := g.CookieName(wire)
	setCookie(h, cookie{name: name, value: g.Keys.Seal(session.PurposeSession, s, name, g.bound(wire)), domain: g.Domain.Name,
		maxAge: s.MaxAge(g.Clock.Now()), secure: g.secure(wire), sameSite: http.SameSiteLaxMode})
}

// End deletes the session cookie with the same name, domain and flags
// it was set with, or browsers would keep it.
func (g *Gate) End(h http.Header, wire Wire) {
	setCookie(h, cookie{name: g.CookieName(wire), domain: g.Domain.Name, maxAge: -1, secure: g.secure(wire), sameSite: http.SameSiteLaxMode})
}

// secure is whether the session cookie is Secure: over HTTPS, or with a
// cookie domain when login_url is https.
func (g *Gate) secure(wire Wire) bool {
	if g.Domain.Name != "" {
		return g.Domain.Secure
	}
	return wire.Secure
}

// cookie is a cookie to set: HttpOnly and Path=/ always.
type cookie struct {
	name, value, domain string
	maxAge              int
	secure              bool
	sameSite            http.SameSite
}

// setCookie is the one writer of the gate's cookies.
func setCookie(h http.Header, c cookie) {
	line := (&http.Cookie{Name: c.name, Value: c.value, Path: "/", Domain: c.domain, MaxAge: c.maxAge, Secure: c.secure,
		HttpOnly: true, SameSite: c.sameSite}).String()
	if line != "" {
		h.Add("Set-Cookie", line)
	}
}

// cookieValue finds the named cookie in the Cookie header lines without
// parsing the others: r.Cookie would allocate a Cookie and a slice on
// every request with a session (BenchmarkRoutes/profile_JSON).
func cookieValue(lines []string, name string) (string, bool) {
	for _, line := range lines {
		for line != "" {
			var part string
			part, line, _ = strings.Cut(line, ";")
			k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
			if ok && k == name {
				return v, true
			}
		}
	}
	return "", false
}
