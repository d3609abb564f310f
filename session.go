package miniapp

import (
	"context"
	"net/http"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/account"
	"github.com/caddy-miniapp/miniapp/internal/session"
	"github.com/caddy-miniapp/miniapp/internal/web"
	"github.com/caddy-miniapp/miniapp/store"
)

// hostPrefix makes browsers accept the cookie only when it is Secure,
// has Path=/ and no Domain, so no subdomain can set or overwrite it.
const hostPrefix = "__Host-"

// signedIn is the request's valid session with its account.
type signedIn struct {
	*session.Session
	acct *account.Account
}

// cookieName is the session cookie's name for this request: with the
// __Host- prefix over HTTPS; with cookie_domain, the one name of the
// whole domain, which login_url's scheme fixes.
func (h *Handler) cookieName(r *http.Request) string {
	switch {
	case h.domain.name != "":
		return h.domain.cookie
	case web.Secure(r):
		return h.hostCookie
	}
	return h.CookieName
}

// cookieSecure is whether the session cookie is Secure: over HTTPS, or
// with cookie_domain when login_url is https.
func (h *Handler) cookieSecure(r *http.Request) bool {
	if h.domain.name != "" {
		return h.domain.secure
	}
	return web.Secure(r)
}

// sessionHost is what the session cookie is bound to besides its name:
// the cookie domain, or else the request's host.
func (h *Handler) sessionHost(r *http.Request) string {
	if h.domain.name != "" {
		return h.domain.name
	}
	return web.Host(r)
}

// sessionOf returns the request's valid session, or nil: a cookie that
// is missing, forged, altered, expired (absolutely or idle), revoked or
// of a removed user is no session at all. Each refused cookie is counted.
func (h *Handler) sessionOf(r *http.Request) *signedIn {
	name := h.cookieName(r)
	value, ok := web.CookieValue(r, name)
	if !ok {
		return nil
	}
	s, err := h.keys.Open(session.PurposeSession, value, name, h.sessionHost(r))
	if err != nil {
		h.count(metrics.rejections, "malformed")
		return nil
	}
	now, lifetime, idle := h.clock.Now(), time.Duration(h.SessionLifetime), time.Duration(h.IdleTimeout)
	if !s.Live(now, lifetime, idle) {
		// /miniapp/auth may have kept the idle window open server-side
		used := *s
		used.LastSeen = usedSince(h.shared, s)
		if !used.LastSeen.After(s.LastSeen) || !used.Live(now, lifetime, idle) {
			h.count(metrics.rejections, "expired")
			return nil
		}
	}
	// a domain cookie belongs to the domain's hosts alone (the auth
	// endpoint checks the host of the request it was forwarded)
	if h.domain.name != "" && r.URL.Path != authPath && !h.covers(r, web.Host(r)) {
		h.count(metrics.rejections, "malformed")
		return nil
	}
	acct, known := h.accounts.Lookup(s.User)
	if !known || s.Account != acct.ID.Tag() || h.shared.Revoked(store.AccountID(acct.ID), s.ID, s.Expires, s.Counter, s.Generation) {
		h.count(metrics.rejections, "revoked")
		return nil
	}
	return &signedIn{Session: s, acct: acct}
}

// usedSince is the session's time of last use: its cookie's, or a later
// one recorded by the endpoint.
func usedSince(shared *store.Realm, s *session.Session) time.Time {
	if used := shared.LastUse(s.ID, s.Expires); used.After(s.LastSeen) {
		return used
	}
	return s.LastSeen
}

// renew sends the cookie again with a new time of last use once less
// than half of the idle window is left, so an active session does not
// lapse; its absolute expiry stays.
func (h *Handler) renew(w http.ResponseWriter, r *http.Request, s *signedIn) {
	renewed := s.Renewed(h.clock.Now(), time.Duration(h.IdleTimeout))
	if renewed == nil {
		return
	}
	h.setCookie(w, r, renewed)
	// no shared cache may keep a response that carries a session cookie
	w.Header().Set("Cache-Control", "no-store")
}

// startSession starts a session of the account for the request's
// client: recorded in the store's index, sent as the cookie, and the
// browser remembered as a device of the account.
func (h *Handler) startSession(ctx context.Context, w http.ResponseWriter, r *http.Request, acct *account.Account, in loginInput, factors uint8) *signedIn {
	counter := h.shared.Counter(ctx, store.AccountID(acct.ID))
	s := session.New(acct.Name, acct.ID.Tag(), counter, h.clock.Now(), time.Duration(h.SessionLifetime))
	s.Generation, s.Factors = h.shared.Generation(), factors
	sess := &signedIn{Session: s, acct: acct}
	h.shared.Login(ctx, sess.entry(in.ip, store.DeviceName(r.UserAgent())))
	h.setCookie(w, r, s)
	device := h.setDeviceCookie(w, r, acct, counter, in.device)
	h.shared.AddDevice(ctx, store.AccountID(acct.ID), device.ID, device.Expires)
	return sess
}

// entry is the index entry of a session that begins now.
func (s *signedIn) entry(address, device string) store.Entry {
	return store.Entry{ID: s.ID, Account: store.AccountID(s.acct.ID), Counter: s.Counter, Started: s.Issued, Expires: s.Expires,
		Generation: s.Generation, Factors: s.Factors, Address: address, Device: device}
}

// setCookie sends the sealed session, kept by the browser until the
// session expires.
func (h *Handler) setCookie(w http.ResponseWriter, r *http.Request, s *session.Session) {
	name := h.cookieName(r)
	http.SetCookie(w, &http.Cookie{
		Name:     name,
		Value:    h.keys.Seal(session.PurposeSession, s, name, h.sessionHost(r)),
		Path:     "/",
		Domain:   h.domain.name,
		MaxAge:   s.MaxAge(h.clock.Now()),
		Secure:   h.cookieSecure(r),
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
	})
}

// clearCookie deletes the cookie with the same name, path and flags it
// was set with, or browsers would keep it.
func (h *Handler) clearCookie(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{
		Name:     h.cookieName(r),
		Value:    "",
		Path:     "/",
		Domain:   h.domain.name,
		MaxAge:   -1,
		Secure:   h.cookieSecure(r),
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
	})
}

// deviceLifetime is how long a browser stays known after its last
// successful login.
const deviceLifetime = 90 * 24 * time.Hour

// A device cookie (OWASP's "device cookie" against brute force) marks a
// browser where an account has signed in before. Its login for that
// account waits in the account's lane of known devices, which takes turns
// with the anonymous lanes, and is counted under the device's own
// failure limit instead of the
// client address's, so a flood of guesses from other clients does not
// lock a returning user out. It is sealed for its own purpose, so neither
// cookie can stand for the other, and carries the account's sign-out
// counter: a sign out everywhere forgets the account's devices too.

// deviceCookieName is the device cookie's name for this request:
// cookie_name with _device, __Host- over HTTPS. It stays host-only on the
// login site whatever cookie_domain says.
func (h *Handler) deviceCookieName(r *http.Request) string {
	if web.Secure(r) {
		return h.hostCookie + "_device"
	}
	return h.CookieName + "_device"
}

// knownDevice returns the request's device cookie when it was issued to
// this browser at a successful login of the named account as it is
// configured now, since its last sign out everywhere, and is among the
// account's newest devices in the store; nil otherwise.
func (h *Handler) knownDevice(r *http.Request, name string) *session.Session {
	cookie := h.deviceCookieName(r)
	value, ok := web.CookieValue(r, cookie)
	if !ok {
		return nil
	}
	d, err := h.keys.Open(session.PurposeDevice, value, cookie, web.Host(r))
	if err != nil || d.User != name || !h.clock.Now().Before(d.Expires) {
		return nil
	}
	acct, known := h.accounts.Lookup(name)
	if !known || d.Account != acct.ID.Tag() {
		return nil
	}
	// the store's counter, as a sign out everywhere long ago may have
	// left this node's memory since
	id := store.AccountID(acct.ID)
	if d.Counter < h.shared.Counter(r.Context(), id) || !h.shared.KnownDevice(r.Context(), id, d.ID) {
		return nil
	}
	return d
}

// setDeviceCookie remembers the browser after a successful login of
// acct, under the account's sign-out counter, keeping the device's ID
// (and so its failure count) when it was known already, and returns it.
func (h *Handler) setDeviceCookie(w http.ResponseWriter, r *http.Request, acct *account.Account, counter uint32, known *session.Session) *session.Session {
	d := session.New(acct.Name, acct.ID.Tag(), counter, h.clock.Now(), deviceLifetime)
	if known != nil {
		d.ID = known.ID
	}
	name := h.deviceCookieName(r)
	http.SetCookie(w, &http.Cookie{
		Name:     name,
		Value:    h.keys.Seal(session.PurposeDevice, d, name, web.Host(r)),
		Path:     "/",
		MaxAge:   int(deviceLifetime.Seconds()),
		Secure:   web.Secure(r),
		HttpOnly: true,
		SameSite: http.SameSiteStrictMode,
	})
	return d
}
