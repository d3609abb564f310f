package routes

import (
	"cmp"
	"net/http"

	"github.com/caddy-miniapp/miniapp/internal/gate"
	"github.com/caddy-miniapp/miniapp/internal/web"
	"github.com/caddy-miniapp/miniapp/store"
	"go.uber.org/zap"
)

// Logout ends the session (or, with all=1, every session of the user),
// clears the cookie and goes on to next or the login page; with
// session=<id> it ends that other session of the user instead, and goes
// back to the profile. With cookie_domain, GET shows a page whose form
// does the same.
func (a *App) Logout(w http.ResponseWriter, r *http.Request, in web.Request, sess *gate.Session) error {
	if a.domain.Name == "" {
		if err := web.Allow(w, r, "POST", http.MethodPost); err != nil {
			return err
		}
	} else if err := web.Allow(w, r, "GET, HEAD, POST", http.MethodGet, http.MethodHead, http.MethodPost); err != nil {
		return err
	}
	if r.Method != http.MethodPost {
		// with cookie_domain, a sign-out link of another site of the
		// domain: a confirmation whose same-origin form signs out, then
		// goes on to next
		next, err := web.FormValue(r.URL.RawQuery, "next")
		if err != nil {
			return err
		}
		w.Header().Set("Cache-Control", "no-store")
		data := web.PageData{Title: "Sign out", Next: a.domain.SafeNext(next, in.Secure)}
		if sess != nil {
			data.User = sess.User
		}
		return a.Site.Render(w, r, http.StatusOK, "logout.html", data)
	}
	if err := a.sameOrigin(r); err != nil {
		return err
	}
	body, err := web.ReadFields(w, r, a.maxBody, "all", "session", "next")
	if err != nil {
		return err
	}
	if body["session"] != "" {
		id, err := gate.ParseSessionID(body["session"])
		if err != nil {
			return web.Reject(http.StatusBadRequest, err.Error())
		}
		if sess == nil || id != sess.ID {
			return a.endOther(w, r, in, sess, id)
		}
	}
	a.signOut(w, r, in, sess, body["all"] == "1")
	web.Redirect(w, r, cmp.Or(a.domain.SafeNext(body["next"], in.Secure), a.domain.LoginURL))
	return nil
}

// signOut ends the browser's session (nil: none), or with everywhere
// every session of its user, and clears its cookie.
func (a *App) signOut(w http.ResponseWriter, r *http.Request, in web.Request, sess *gate.Session, everywhere bool) {
	if sess != nil {
		a.Shared.Revoke(r.Context(), sess.ID, sess.Expires)
		a.pages.drop(sess.ID)
		ended := sess.ID[:]
		if everywhere {
			a.Shared.SignOutEverywhere(r.Context(), store.AccountID(sess.Account.ID))
			a.endTrusts(r, sess.User)
			ended = nil
		}
		if a.Provider != nil {
			a.Provider.LoggedOut(sess.User, ended)
		}
		a.count.Logout()
		a.Logger.Info("logout", zap.String("user", sess.User), zap.String("client_ip", in.Client), zap.Bool("everywhere", everywhere))
	}
	a.Gate.End(w.Header(), WireOf(r))
}
