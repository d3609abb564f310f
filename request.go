package miniapp

import (
	"cmp"
	"net/http"

	"github.com/caddy-miniapp/miniapp/internal/account"
	"github.com/caddy-miniapp/miniapp/internal/guard"
	"github.com/caddy-miniapp/miniapp/internal/session"
	"github.com/caddy-miniapp/miniapp/internal/web"
)

// loginInput is what a POST /login gives, read once: the fields, the
// client's address and the browser's device cookie for the named user.
type loginInput struct {
	name, password, next string
	// code is a second factor's code or recovery code, or empty.
	code string
	// ip is Caddy's client IP, which honours trusted_proxies.
	ip string
	// device is the browser's device cookie for the user, or nil.
	device *session.Session
	// pending is the pending sign-in that a code alone finishes, with
	// its account; nil for a sign-in with a password.
	pending     *session.Session
	pendingAcct *account.Account
}

// readLogin reads a login: a same-origin POST of username and password
// (and a code, for an account with a second factor), or of a code alone
// with a pending sign-in's cookie.
func (h *Handler) readLogin(w http.ResponseWriter, r *http.Request) (loginInput, error) {
	var in loginInput
	if err := h.sameOrigin(r); err != nil {
		return in, err
	}
	next, err := web.FormValue(r.URL.RawQuery, "next")
	if err != nil {
		return in, err
	}
	body, err := web.ReadFields(w, r, h.MaxBodySize, "username", "password", "code", "next")
	if err != nil {
		return in, err
	}
	in.name, in.password, in.code, in.next = body["username"], body["password"], body["code"], h.safeNext(r, cmp.Or(next, body["next"]))
	if err := account.CheckCode(in.code); err != nil {
		return in, web.Reject(http.StatusBadRequest, err.Error())
	}
	in.ip = web.ClientIP(r)
	if in.name == "" && in.password == "" && in.code != "" {
		if in.pending, in.pendingAcct = h.pendingOf(r); in.pending == nil {
			return in, web.Reject(http.StatusUnauthorized, "the sign-in has expired; sign in again")
		}
		in.name = in.pending.User
		in.device = h.knownDevice(r, in.name)
		return in, nil
	}
	if in.name == "" || in.password == "" {
		return in, web.Reject(http.StatusBadRequest, "username and password are required")
	}
	if len(in.name) > web.MaxFieldLen || len(in.password) > web.MaxFieldLen {
		return in, web.Reject(http.StatusBadRequest, "username or password is too long")
	}
	if err := web.CheckText(in.name); err != nil {
		return in, err
	}
	in.device = h.knownDevice(r, in.name)
	return in, nil
}

func (h *Handler) guardLogin(in loginInput) guard.Login {
	login := guard.Login{Client: guard.ClientKey(in.ip)}
	if in.device != nil {
		// the slots serve every realm of the process
		login.Device, login.Account = guard.DeviceKey(in.device.ID), h.Realm+"\x00"+in.name
	}
	return login
}
