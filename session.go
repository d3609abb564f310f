package miniapp

import (
	"context"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// hostPrefix makes browsers accept the cookie only when it is Secure,
// has Path=/ and no Domain, so no subdomain can set or overwrite it.
const hostPrefix = "__Host-"

// session is what the cookie carries: who signed in, which session it
// is, and its times (whole seconds).
type session struct {
	// User is the name of the signed-in account.
	User string
	// ID identifies the session for revocation; random per login.
	ID [16]byte
	// Account tags the account the session was issued for: a session of
	// another site's account of the same name, or of a password hash
	// since changed, is refused.
	Account accountTag
	// Counter is the user's sign-out counter at login: signing out
	// everywhere raises the counter, ending every session below it.
	Counter uint32
	// Issued is when the user signed in.
	Issued time.Time
	// Expires is the absolute end of the session.
	Expires time.Time
	// LastSeen is when the cookie was last issued, for idle expiry.
	LastSeen time.Time

	// acct is the account, once the handler has found it.
	acct *account
}

// cookieName is the session cookie's name for this request: with the
// __Host- prefix over HTTPS.
func (h *Handler) cookieName(r *http.Request) string {
	if secure(r) {
		return h.hostCookie
	}
	return h.CookieName
}

// secure reports whether the client reached the site over HTTPS: the
// connection is TLS, or it comes from one of Caddy's trusted_proxies
// that says so in X-Forwarded-Proto. The header of any other client is
// ignored.
func secure(r *http.Request) bool {
	if r.TLS != nil {
		return true
	}
	trusted, _ := caddyhttp.GetVar(r.Context(), caddyhttp.TrustedProxyVarKey).(bool)
	if !trusted {
		return false
	}
	proto, _, _ := strings.Cut(r.Header.Get("X-Forwarded-Proto"), ",")
	return strings.EqualFold(strings.TrimSpace(proto), "https")
}

// cookieHost is the host a cookie is bound to, besides its name: the
// request's host without port, as browsers keep cookies, so a cookie of
// one site is no session on another site that shares the key set.
func cookieHost(r *http.Request) string {
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return strings.ToLower(host)
}

// cookieValue finds the named cookie in the request's Cookie headers
// without parsing the others. Hand-written rather than r.Cookie, which
// allocates a Cookie and a slice: two more allocations on every request
// with a session (BenchmarkRoutes/profile_JSON).
func cookieValue(r *http.Request, name string) (string, bool) {
	for _, line := range r.Header["Cookie"] {
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

// sessionOf returns the request's valid session, or nil: a cookie that
// is missing, forged, altered, expired (absolutely or idle), revoked or
// of a removed user is no session at all. Each refused cookie is counted.
func (h *Handler) sessionOf(r *http.Request) *session {
	name := h.cookieName(r)
	value, ok := cookieValue(r, name)
	if !ok {
		return nil
	}
	s, err := h.keys.open(value, name, cookieHost(r))
	if err != nil {
		metrics.rejections.WithLabelValues("malformed").Inc()
		return nil
	}
	now := h.clock.now()
	// the lifetime and idle timeout configured now apply to sessions
	// issued under an earlier config too
	if !now.Before(s.Expires) || now.Sub(s.Issued) >= time.Duration(h.SessionLifetime) ||
		now.Sub(s.LastSeen) > time.Duration(h.IdleTimeout) {
		metrics.rejections.WithLabelValues("expired").Inc()
		return nil
	}
	acct, known := h.users[s.User]
	if !known || s.Account != acct.id.tag() || h.revoked.has(acct.id, s) {
		metrics.rejections.WithLabelValues("revoked").Inc()
		return nil
	}
	s.acct = acct
	return s
}

// renew sends the cookie again with a new time of last use once less
// than half of the idle window is left, so an active session does not
// lapse; its absolute expiry stays.
func (h *Handler) renew(w http.ResponseWriter, r *http.Request, s *session) {
	now := h.clock.now().Truncate(time.Second)
	if now.Sub(s.LastSeen) < time.Duration(h.IdleTimeout)/2 {
		return
	}
	renewed := *s
	renewed.LastSeen = now
	h.setCookie(w, r, &renewed)
	// no shared cache may keep a response that carries a session cookie
	w.Header().Set("Cache-Control", "no-store")
}

// newSession starts a session for user with a fresh random ID, so a
// session ID planted before login is never carried over.
func (h *Handler) newSession(ctx context.Context, acct *account) *session {
	now := h.clock.now().Truncate(time.Second)
	return &session{
		User:     acct.Name,
		ID:       [16]byte(randomBytes(16)),
		Account:  acct.id.tag(),
		Counter:  h.revoked.counter(ctx, acct.id),
		Issued:   now,
		Expires:  now.Add(time.Duration(h.SessionLifetime)),
		LastSeen: now,
		acct:     acct,
	}
}

// setCookie sends the sealed session, kept by the browser until the
// session expires.
func (h *Handler) setCookie(w http.ResponseWriter, r *http.Request, s *session) {
	name := h.cookieName(r)
	http.SetCookie(w, &http.Cookie{
		Name:     name,
		Value:    h.keys.seal(s, name, cookieHost(r)),
		Path:     "/",
		MaxAge:   int(s.Expires.Sub(h.clock.now()).Seconds()),
		Secure:   secure(r),
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
		MaxAge:   -1,
		Secure:   secure(r),
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
	})
}
