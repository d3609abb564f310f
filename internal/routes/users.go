package routes

import (
	"html/template"
	"net/http"
	"strings"

	"github.com/caddy-miniapp/miniapp/internal/gate"
	"github.com/caddy-miniapp/miniapp/internal/signin"
	"github.com/caddy-miniapp/miniapp/internal/totp"
	"github.com/caddy-miniapp/miniapp/internal/users"
	"github.com/caddy-miniapp/miniapp/internal/web"
	"go.uber.org/zap"
)

// The routes of the accounts managed in the realm's store: the page of
// an invite or reset link, and a user's own password.
const (
	InvitePath   = "/login/invite"
	PasswordPath = "/profile/password"
)

// manageUsers wires the realm's managed accounts: found after the
// Caddyfile's, signed in like them.
func (a *App) manageUsers(hasher users.Hasher) {
	a.Users = &users.Service{Realm: a.realm, Records: a.Records, Config: a.Accounts, Hash: hasher, Clock: a.Clock}
	a.Accounts.Manage(a.Users)
	switch like := hasher.FakeHash(); {
	case !a.Accounts.Hashed():
		// an unknown name costs as much as a managed account's password
		_ = a.Accounts.FakeLike(like)
	case !a.Accounts.Like(like) && a.Users.Some():
		a.Logger.Warn("managed accounts' passwords are hashed unlike most of the Caddyfile's: a wrong password of one of them takes another time than an unknown name, which tells their names apart; set password_hash to the algorithm of the Caddyfile's hashes",
			zap.String("password_hash", string(hasher)))
	}
	a.SignIn.Users = a.Users
	if a.Passkeys != nil {
		a.Passkeys.Managed = a.Users.Accounts
	}
}

// rules are what a new password must meet on the request's host.
func (a *App) rules(r *http.Request) users.Rules {
	min := 15
	if a.required {
		min = 8
	}
	host := strings.ToLower(r.Host)
	if i := strings.LastIndexByte(host, ':'); i > strings.LastIndexByte(host, ']') {
		host = host[:i]
	}
	return users.Rules{Min: min, Hasher: a.Users.Hash, Realm: a.realm, Host: host}
}

// Invite is the page of an invite or reset link (GET /login/invite: its
// script moves the link's token from the fragment into the form), and
// its form (POST: token and password, form or JSON): the password set,
// then signed in (browser 303 /profile, JSON {"username"}), or a 400
// that says why.
func (a *App) Invite(w http.ResponseWriter, r *http.Request, in web.Request, _ *gate.Session) error {
	if err := web.Allow(w, r, "GET, HEAD, POST", http.MethodGet, http.MethodHead, http.MethodPost); err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	rules := a.rules(r)
	page := web.PageData{Title: "Set your password", MinLength: rules.Min}
	if r.Method != http.MethodPost {
		return a.Site.Render(w, r, http.StatusOK, "invite.html", page)
	}
	if err := a.sameOrigin(r); err != nil {
		return err
	}
	body, err := web.ReadFields(w, r, a.maxBody, "token", "password")
	if err != nil {
		return err
	}
	if body["token"] == "" || body["password"] == "" {
		return web.Reject(http.StatusBadRequest, "token and password are required")
	}
	token := strings.TrimSpace(body["token"])
	out := a.SignIn.Invite(r.Context(), w.Header(), token, body["password"], rules, clientOf(r, in))
	if refusal, ok := out.Err.(*signin.Refusal); ok {
		if in.Format != web.HTML || web.HasErrorRoutes(r) {
			return refusal
		}
		// a password the rules refused leaves the token usable: the
		// form keeps it (the script took it out of the address)
		page.Error = refusal.Reason
		if out.Form == signin.PasswordForm {
			page.Token = token
		}
		_ = rejection(w, refusal)
		return a.Site.Render(w, r, refusal.Status, "invite.html", page)
	}
	return a.answer(w, r, in.Format, "/profile", "", out)
}

// ChangePassword is a user's own password (GET /profile/password: the
// form; POST: password and new_password, form or JSON): a browser 303
// /profile, JSON {"changed": true}; 403 for a wrong current password,
// 400 naming the rule a new one breaks, 409 for an account of the
// Caddyfile.
func (a *App) ChangePassword(w http.ResponseWriter, r *http.Request, in web.Request, sess *gate.Session) error {
	if err := web.Allow(w, r, "GET, HEAD, POST", http.MethodGet, http.MethodHead, http.MethodPost); err != nil {
		return err
	}
	if sess == nil {
		return a.SignInFirst(w, r, in, nil)
	}
	w.Header().Set("Cache-Control", "no-store")
	rules := a.rules(r)
	page := web.PageData{Title: "Change your password", MinLength: rules.Min}
	if k := a.SignIn.StepUpOf(sess); k == signin.StepUpCode || k == signin.StepUpPasskey {
		page.StepUp = template.HTML(k.AppendField(nil, "current-code"))
	}
	if !sess.Account.Managed {
		return web.Reject(http.StatusConflict, users.ErrInConfig.Error())
	}
	if r.Method != http.MethodPost {
		return a.Site.Render(w, r, http.StatusOK, "password.html", page)
	}
	if err := a.sameOrigin(r); err != nil {
		return err
	}
	body, err := web.ReadFields(w, r, a.maxBody, "password", "current_code", "new_password")
	if err != nil {
		return err
	}
	if err := totp.CheckCode(body["current_code"]); err != nil {
		return web.Reject(http.StatusBadRequest, err.Error())
	}
	err = a.SignIn.ChangePassword(r.Context(), w.Header(), sess, body["password"], body["current_code"], body["new_password"], rules, clientOf(r, in))
	if refusal, ok := err.(*signin.Refusal); ok && in.Format == web.HTML && !web.HasErrorRoutes(r) {
		page.Error = refusal.Reason
		_ = rejection(w, refusal)
		return a.Site.Render(w, r, refusal.Status, "password.html", page)
	}
	if err != nil {
		return err
	}
	if in.Format == web.JSON {
		return a.Site.JSON(w, r, http.StatusOK, map[string]bool{"changed": true})
	}
	web.Redirect(w, r, "/profile")
	return nil
}
