package routes

import (
	"errors"
	"net/http"

	"github.com/caddy-miniapp/miniapp/internal/gate"
	"github.com/caddy-miniapp/miniapp/internal/signin"
	"github.com/caddy-miniapp/miniapp/internal/web"
)

// Hello greets name, from the query or else from a form or JSON body.
func (a *App) Hello(w http.ResponseWriter, r *http.Request, in web.Request, _ *gate.Session) error {
	if err := web.Allow(w, r, "GET, HEAD, POST", http.MethodGet, http.MethodHead, http.MethodPost); err != nil {
		return err
	}
	name, err := web.FormValue(r.URL.RawQuery, "name")
	if err != nil {
		return err
	}
	if r.Method == http.MethodPost {
		if err := a.sameOrigin(r); err != nil {
			return err
		}
		in, err := web.ReadFields(w, r, a.MaxBody, "name")
		if err != nil {
			return err
		}
		if name == "" {
			name = in["name"]
		}
	}
	if len(name) > web.MaxNameLen {
		return web.Reject(http.StatusBadRequest, "name is longer than 256 bytes")
	}
	if err := web.CheckText(name); err != nil {
		return err
	}
	if name == "" {
		name = "World"
	}
	if in.Format == web.JSON {
		return a.Site.JSON(w, r, http.StatusOK, struct {
			Message string `json:"message"`
		}{"Hello, " + name + "!"})
	}
	body := make([]byte, 0, len("Hello, !")+len(name))
	body = append(append(append(body, "Hello, "...), name...), '!')
	web.Write(w, r, http.StatusOK, web.TextPlain, body)
	return nil
}

// SignInFirst answers a request that needs a session: browsers go to the
// login page and come back afterwards, other clients get 401.
func (a *App) SignInFirst(w http.ResponseWriter, r *http.Request, in web.Request, _ *gate.Session) error {
	if in.Format == web.HTML {
		next := r.URL.RequestURI()
		if a.Domain.Name != "" {
			// the login site is another host: come back to this one
			next = web.URL(r)
		}
		web.Redirect(w, r, a.Domain.SignInURL(next))
		return nil
	}
	w.Header().Set("WWW-Authenticate", a.challenge(r))
	return web.Reject(http.StatusUnauthorized, "sign in required")
}

// challenge is the WWW-Authenticate value of a 401: there is no standard
// scheme for a login form, so it follows the cookie authentication draft
// (draft-broyer-http-cookie-auth) in naming the form and the cookie.
func (a *App) challenge(r *http.Request) string {
	return `Cookie realm="` + a.Realm + `", form-action="` + a.Domain.LoginURL + `", cookie-name="` + a.Gate.CookieName(WireOf(r)) + `"`
}

// rejection is a route's error as the site answers it: a sign-in's
// refusal becomes its status and reason, with its Retry-After.
func rejection(w http.ResponseWriter, err error) error {
	if refusal, ok := errors.AsType[*signin.Refusal](err); ok {
		if refusal.Wait > 0 {
			w.Header().Set("Retry-After", refusal.RetryAfter())
		}
		return web.Reject(refusal.Status, refusal.Reason)
	}
	return err
}

// Fail answers a route's error as the site answers errors.
func (a *App) Fail(w http.ResponseWriter, r *http.Request, f web.Format, err error) error {
	return a.Site.Fail(w, r, f, rejection(w, err))
}
