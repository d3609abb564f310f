package miniapp

import (
	"net/http"
	"time"
)

// hostPrefix makes browsers accept the cookie only when it is Secure,
// has Path=/ and no Domain, so no subdomain can set or overwrite it.
const hostPrefix = "__Host-"

// cookieName is the session cookie's name for this request: with the
// __Host- prefix over HTTPS.
func (h *Handler) cookieName(r *http.Request) string {
	if r.TLS != nil {
		return hostPrefix + h.CookieName
	}
	return h.CookieName
}

// session returns the request's valid session, or nil: a cookie that is
// missing, forged, altered, expired, revoked or of a removed user is no
// session at all.
func (h *Handler) session(r *http.Request) *Session {
	c, err := r.Cookie(h.cookieName(r))
	if err != nil {
		return nil
	}
	s, err := h.keys.Open(c.Value, h.CookieName)
	if err != nil {
		return nil
	}
	if !clock.Now().Before(s.Expires) {
		return nil
	}
	if h.store.Revoked(s) {
		return nil
	}
	if _, ok := h.users[s.User]; !ok {
		return nil
	}
	return s
}

// newSession starts a session for user with a fresh random ID, so a
// session ID planted before login is never carried over.
func (h *Handler) newSession(user string) *Session {
	now := clock.Now().Truncate(time.Second)
	return &Session{
		User:       user,
		ID:         [16]byte(randomBytes(16)),
		Generation: h.store.Generation(user),
		Issued:     now,
		Expires:    now.Add(time.Duration(h.SessionLifetime)),
		LastSeen:   now,
	}
}

// setCookie sends the sealed session, kept by the browser until the
// session expires.
func (h *Handler) setCookie(w http.ResponseWriter, r *http.Request, s *Session) {
	http.SetCookie(w, &http.Cookie{
		Name:     h.cookieName(r),
		Value:    h.keys.Seal(s, h.CookieName),
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
