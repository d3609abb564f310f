package miniapp

import (
	"context"
	"net"
	"net/http"
	"strings"
	"time"
)

// hostPrefix makes browsers accept the cookie only when it is Secure,
// has Path=/ and no Domain, so no subdomain can set or overwrite it.
const hostPrefix = "__Host-"

// cookieName is the session cookie's name for this request: with the
// __Host- prefix over HTTPS.
func (h *Handler) cookieName(r *http.Request) string {
	if r.TLS != nil {
		return h.hostCookie
	}
	return h.CookieName
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
// without parsing the others.
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

// session returns the request's valid session, or nil: a cookie that is
// missing, forged, altered, expired (absolutely or idle), revoked or of a
// removed user is no session at all. Each refused cookie is counted.
func (h *Handler) session(r *http.Request) *Session {
	name := h.cookieName(r)
	value, ok := cookieValue(r, name)
	if !ok {
		return nil
	}
	s, err := h.keys.Open(value, name, cookieHost(r))
	if err != nil {
		metrics.rejections.WithLabelValues("malformed").Inc()
		return nil
	}
	now := clock.Now()
	if !now.Before(s.Expires) || now.Sub(s.LastSeen) > time.Duration(h.IdleTimeout) {
		metrics.rejections.WithLabelValues("expired").Inc()
		return nil
	}
	user, known := h.users[s.User]
	if !known || h.store.Revoked(s) {
		metrics.rejections.WithLabelValues("revoked").Inc()
		return nil
	}
	s.user = user
	return s
}

// renew sends the cookie again with a new time of last use once less
// than half of the idle window is left, so an active session does not
// lapse; its absolute expiry stays.
func (h *Handler) renew(w http.ResponseWriter, r *http.Request, s *Session) {
	now := clock.Now().Truncate(time.Second)
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
func (h *Handler) newSession(ctx context.Context, user string) *Session {
	now := clock.Now().Truncate(time.Second)
	return &Session{
		User:       user,
		ID:         [16]byte(randomBytes(16)),
		Generation: h.store.Generation(ctx, user),
		Issued:     now,
		Expires:    now.Add(time.Duration(h.SessionLifetime)),
		LastSeen:   now,
	}
}

// setCookie sends the sealed session, kept by the browser until the
// session expires.
func (h *Handler) setCookie(w http.ResponseWriter, r *http.Request, s *Session) {
	name := h.cookieName(r)
	http.SetCookie(w, &http.Cookie{
		Name:     name,
		Value:    h.keys.Seal(s, name, cookieHost(r)),
		Path:     "/",
		MaxAge:   int(s.Expires.Sub(clock.Now()).Seconds()),
		Secure:   r.TLS != nil,
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
		Secure:   r.TLS != nil,
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
	})
}
