package routes

import (
	"cmp"
	"errors"
	"net/http"
	"net/url"

	"github.com/caddy-miniapp/miniapp/internal/gate"
	"github.com/caddy-miniapp/miniapp/internal/passkey"
	"github.com/caddy-miniapp/miniapp/internal/signin"
	"github.com/caddy-miniapp/miniapp/internal/totp"
	"github.com/caddy-miniapp/miniapp/internal/web"
)

// The passkey routes: registering and managing (signed in), and signing
// in without a password or a user name.
const (
	PasskeysPath     = "/profile/passkeys"
	LoginPasskeyPath = "/login/passkey"
)

// Login shows the form (GET; with step=code, the code form of a pending
// sign-in) or signs in (POST): the input read once, the sign-in's
// outcome, the answer written once.
func (a *App) Login(w http.ResponseWriter, r *http.Request, in web.Request, _ *gate.Session) error {
	if err := web.Allow(w, r, "GET, HEAD, POST", http.MethodGet, http.MethodHead, http.MethodPost); err != nil {
		return err
	}
	if r.Method != http.MethodPost {
		next, err := web.FormValue(r.URL.RawQuery, "next")
		if err != nil {
			return err
		}
		next = a.domain.SafeNext(next, in.Secure)
		data := web.PageData{Title: "Sign in", Next: next, Passkey: a.Passkeys != nil, Providers: a.providerLinks(next)}
		if step, _ := web.FormValue(r.URL.RawQuery, "step"); step == "code" {
			if p, _ := a.Gate.Pending(r.Context(), WireOf(r)); p != nil {
				data.Title, data.CodeStep, data.TrustFor = "Enter your code", true, a.trustFor()
				w.Header().Set("Cache-Control", "no-store")
			}
		}
		return a.Site.Render(w, r, http.StatusOK, "login.html", data)
	}
	login, next, err := a.readLogin(w, r, in)
	if err != nil {
		return err
	}
	var out signin.Outcome
	if login.Pending != nil {
		out = a.SignIn.Code(r.Context(), w.Header(), login)
	} else {
		out = a.SignIn.Password(r.Context(), w.Header(), login)
	}
	return a.answer(w, r, in.Format, next, login.Name, out)
}

// readLogin reads a login: a same-origin POST of username and password
// (and a code, for an account with a second factor), or of a code alone
// with a pending sign-in's cookie; and where to go next.
func (a *App) readLogin(w http.ResponseWriter, r *http.Request, in web.Request) (signin.Login, string, error) {
	var login signin.Login
	if err := a.sameOrigin(r); err != nil {
		return login, "", err
	}
	next, err := web.FormValue(r.URL.RawQuery, "next")
	if err != nil {
		return login, "", err
	}
	body, err := web.ReadFields(w, r, a.maxBody, "username", "password", "code", "next", "trust_browser")
	if err != nil {
		return login, "", err
	}
	login.Name, login.Password, login.Code, login.Trust = body["username"], body["password"], body["code"], body["trust_browser"] == "1"
	next = a.domain.SafeNext(cmp.Or(next, body["next"]), in.Secure)
	if err := totp.CheckCode(login.Code); err != nil {
		return login, "", web.Reject(http.StatusBadRequest, err.Error())
	}
	login.Client = clientOf(r, in)
	if login.Name == "" && login.Password == "" && login.Code != "" {
		if login.Pending, login.PendingAccount = a.Gate.Pending(r.Context(), login.Wire); login.Pending == nil {
			return login, "", web.Reject(http.StatusUnauthorized, "the sign-in has expired; sign in again")
		}
		login.Name = login.Pending.User
	} else {
		if login.Name == "" || login.Password == "" {
			return login, "", web.Reject(http.StatusBadRequest, "username and password are required")
		}
		if len(login.Name) > web.MaxFieldLen || len(login.Password) > web.MaxFieldLen {
			return login, "", web.Reject(http.StatusBadRequest, "username or password is too long")
		}
		if err := web.CheckText(login.Name); err != nil {
			return login, "", err
		}
	}
	login.Known = a.Gate.KnownDevice(r.Context(), login.Wire, login.Name)
	return login, next, nil
}

// answer writes a sign-in's outcome once, in format f: the session's
// next page (or its user, as JSON), the code step, or the refusal (a
// browser sees its form again).
func (a *App) answer(w http.ResponseWriter, r *http.Request, f web.Format, next, name string, out signin.Outcome) error {
	refusal, refused := errors.AsType[*signin.Refusal](out.Err)
	switch {
	case out.Err != nil && !refused:
		return out.Err
	case refused && out.Form == signin.PasswordForm:
		w.Header().Set("WWW-Authenticate", a.challenge(r))
		switch f {
		case web.JSON:
			return a.Site.JSON(w, r, refusal.Status, map[string]string{"error": refusal.Reason})
		case web.HTML:
			return a.Site.Render(w, r, refusal.Status, "login.html", web.PageData{Title: "Sign in", Error: refusal.Reason, Next: next, User: name,
				Passkey: a.Passkeys != nil, Providers: a.providerLinks(next)})
		}
		return refusal
	case refused && out.Form == signin.CodeForm && f == web.HTML && !web.HasErrorRoutes(r):
		if refusal.Wait > 0 {
			w.Header().Set("Retry-After", refusal.RetryAfter())
		}
		return a.Site.Render(w, r, refusal.Status, "login.html", web.PageData{Title: "Enter your code", Error: refusal.Reason, Next: next, CodeStep: true,
			TrustFor: a.trustFor()})
	case refused:
		return refusal
	}
	w.Header().Set("Cache-Control", "no-store")
	if out.CodeNeeded {
		if f == web.HTML {
			to := "/login?step=code"
			if next != "" {
				to += "&next=" + url.QueryEscape(next)
			}
			web.Redirect(w, r, to)
			return nil
		}
		return a.Site.JSON(w, r, http.StatusUnauthorized, map[string]any{"error": "second factor required", "second_factor": []string{"totp"}})
	}
	if f == web.JSON {
		return a.Site.JSON(w, r, http.StatusOK, map[string]string{"username": out.Session.User})
	}
	if a.SignIn.MustEnrol(out.Session) {
		next = TOTPPath
	}
	web.Redirect(w, r, cmp.Or(next, "/profile"))
	return nil
}

// LoginPasskey signs in with a passkey, without a password or a user
// name: action=begin gives a discoverable login's options, and the JSON
// end checks the assertion and signs in (see signin.Service.Passkey).
func (a *App) LoginPasskey(w http.ResponseWriter, r *http.Request, in web.Request, _ *gate.Session) error {
	if a.Passkeys == nil {
		return web.Reject(http.StatusNotFound, "passkeys are off")
	}
	if err := web.Allow(w, r, "POST", http.MethodPost); err != nil {
		return err
	}
	if err := a.sameOrigin(r); err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	rp, err := a.Passkeys.RelyingParty(passkey.Site{Host: r.Host, Secure: in.Secure})
	if err != nil {
		return err
	}
	if !web.IsJSON(r.Header.Get("Content-Type")) {
		body, err := web.ReadFields(w, r, a.maxBody, "action")
		if err != nil {
			return err
		}
		if body["action"] != "begin" {
			return web.Reject(http.StatusBadRequest, "action must be begin")
		}
		options, err := a.Passkeys.BeginLogin(rp)
		if err != nil {
			return a.Site.Internal(w, r, err)
		}
		return a.Site.JSON(w, r, http.StatusOK, options)
	}
	finish, err := a.readFinish(w, r)
	if err != nil {
		return err
	}
	next, _ := web.FormValue(r.URL.RawQuery, "next")
	out := a.SignIn.Passkey(r.Context(), w.Header(), rp, finish, clientOf(r, in))
	return a.answer(w, r, web.JSON, a.domain.SafeNext(next, in.Secure), "", out)
}

// readFinish reads a passkey ceremony's JSON end through the one bounded
// body reader.
func (a *App) readFinish(w http.ResponseWriter, r *http.Request) (passkey.Finish, error) {
	body, err := web.ReadBody(w, r, a.maxBody)
	if err != nil {
		return passkey.Finish{}, err
	}
	return passkey.ReadFinish(body)
}
