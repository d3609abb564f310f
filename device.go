package miniapp

import (
	"encoding/hex"
	"net/http"
	"time"
)

// deviceLifetime is how long a browser stays known after its last
// successful login.
const deviceLifetime = 90 * 24 * time.Hour

// A device cookie (OWASP's "device cookie" against brute force) marks a
// browser where an account has signed in before. Its login for that
// account goes ahead of anonymous ones in the queue for a password check
// and is counted under the device's own failure limit instead of the
// client address's, so a flood of guesses from other clients does not
// lock a returning user out. It is sealed like the session cookie, under
// its own name (the associated data), so neither can stand for the other.

// deviceCookieName is the device cookie's name for this request: the
// session cookie's name with _device, __Host- over HTTPS.
func (h *Handler) deviceCookieName(r *http.Request) string {
	return h.cookieName(r) + "_device"
}

// knownDevice returns the request's device cookie when it was issued to
// this browser at a successful login of the named account as it is
// configured now, and nil otherwise.
func (h *Handler) knownDevice(r *http.Request, name string) *session {
	cookie := h.deviceCookieName(r)
	value, ok := cookieValue(r, cookie)
	if !ok {
		return nil
	}
	d, err := h.keys.open(value, cookie, cookieHost(r))
	if err != nil || d.User != name || !h.clock.now().Before(d.Expires) {
		return nil
	}
	if acct, known := h.users[name]; !known || d.Account != acct.id.tag() {
		return nil
	}
	return d
}

// deviceKey is the throttle key of a known device.
func deviceKey(d *session) string {
	return "device:" + hex.EncodeToString(d.ID[:])
}

// setDeviceCookie remembers the browser after a successful login of
// acct, keeping the device's ID (and so its failure count) when it was
// known already.
func (h *Handler) setDeviceCookie(w http.ResponseWriter, r *http.Request, acct *account, known *session) {
	now := h.clock.now().Truncate(time.Second)
	d := &session{User: acct.Name, Account: acct.id.tag(), Issued: now, LastSeen: now, Expires: now.Add(deviceLifetime)}
	if known != nil {
		d.ID = known.ID
	} else {
		d.ID = [16]byte(randomBytes(16))
	}
	name := h.deviceCookieName(r)
	http.SetCookie(w, &http.Cookie{
		Name:     name,
		Value:    h.keys.seal(d, name, cookieHost(r)),
		Path:     "/",
		MaxAge:   int(deviceLifetime.Seconds()),
		Secure:   secure(r),
		HttpOnly: true,
		SameSite: http.SameSiteStrictMode,
	})
}
