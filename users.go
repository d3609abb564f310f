package miniapp

import (
	"html/template"
	"net/http"
	"strings"

	"github.com/caddy-miniapp/miniapp/internal/account"
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
	invitePath   = "/login/invite"
	passwordPath = "/profile/password"
)

// manageUsers wires the realm's managed accounts: found after the
// Caddyfile's, signed in like them.
func (h *Handler) manageUsers() {
	hasher := users.Argon2id
	if h.PasswordHash == string(users.Bcrypt) {
		hasher = users.Bcrypt
	}
	h.users = &users.Service{Realm: h.Realm, Records: h.records, Config: h.accounts, Hash: hasher, Clock: h.clock}
	h.accounts.Manage(h.users)
	switch like := hasher.FakeHash(); {
	case !h.accounts.Hashed():
		// an unknown name costs as much as a managed account's password
		_ = h.accounts.FakeLike(like)
	case !h.accounts.Like(like) && h.users.Some():
		h.logger.Warn("managed accounts' passwords are hashed unlike most of the Caddyfile's: a wrong password of one of them takes another time than an unknown name, which tells their names apart; set password_hash to the algorithm of the Caddyfile's hashes",
			zap.String("password_hash", string(hasher)))
	}
	h.signin.Users = h.users
	if h.passkeys != nil {
		h.passkeys.Managed = h.users.Accounts
	}
}

// rules are what a new password must meet on the request's host.
func (h *Handler) rules(r *http.Request) users.Rules {
	min := 15
	if h.SecondFactor == factorRequired {
		min = 8
	}
	host := strings.ToLower(r.Host)
	if i := strings.LastIndexByte(host, ':'); i > strings.LastIndexByte(host, ']') {
		host = host[:i]
	}
	return users.Rules{Min: min, Hasher: h.users.Hash, Realm: h.Realm, Host: host}
}

// invite is the page of an invite or reset link (GET /login/invite: its
// script moves the link's token from the fragment into the form), and
// its form (POST: token and password, form or JSON): the password set,
// then signed in (browser 303 /profile, JSON {"username"}), or a 400
// that says why.
func (h *Handler) invite(w http.ResponseWriter, r *http.Request, in web.Request, _ *gate.Session) error {
	if err := web.Allow(w, r, "GET, HEAD, POST", http.MethodGet, http.MethodHead, http.MethodPost); err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	rules := h.rules(r)
	page := web.PageData{Title: "Set your password", MinLength: rules.Min}
	if r.Method != http.MethodPost {
		return h.site.Render(w, r, http.StatusOK, "invite.html", page)
	}
	if err := h.sameOrigin(r); err != nil {
		return err
	}
	body, err := web.ReadFields(w, r, h.MaxBodySize, "token", "password")
	if err != nil {
		return err
	}
	if body["token"] == "" || body["password"] == "" {
		return web.Reject(http.StatusBadRequest, "token and password are required")
	}
	token := strings.TrimSpace(body["token"])
	out := h.signin.Invite(r.Context(), w.Header(), token, body["password"], rules, clientOf(r, in))
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
		return h.site.Render(w, r, refusal.Status, "invite.html", page)
	}
	return h.answer(w, r, in.Format, "/profile", "", out)
}

// changePassword is a user's own password (GET /profile/password: the
// form; POST: password and new_password, form or JSON): a browser 303
// /profile, JSON {"changed": true}; 403 for a wrong current password,
// 400 naming the rule a new one breaks, 409 for an account of the
// Caddyfile.
func (h *Handler) changePassword(w http.ResponseWriter, r *http.Request, in web.Request, sess *gate.Session) error {
	if err := web.Allow(w, r, "GET, HEAD, POST", http.MethodGet, http.MethodHead, http.MethodPost); err != nil {
		return err
	}
	if sess == nil {
		return h.signInFirst(w, r, in, nil)
	}
	w.Header().Set("Cache-Control", "no-store")
	rules := h.rules(r)
	page := web.PageData{Title: "Change your password", MinLength: rules.Min}
	if k := h.signin.StepUpOf(sess); k == signin.StepUpCode || k == signin.StepUpPasskey {
		page.StepUp = template.HTML(k.AppendField(nil, "current-code"))
	}
	if !sess.Account.Managed {
		return web.Reject(http.StatusConflict, users.ErrInConfig.Error())
	}
	if r.Method != http.MethodPost {
		return h.site.Render(w, r, http.StatusOK, "password.html", page)
	}
	if err := h.sameOrigin(r); err != nil {
		return err
	}
	body, err := web.ReadFields(w, r, h.MaxBodySize, "password", "current_code", "new_password")
	if err != nil {
		return err
	}
	if err := totp.CheckCode(body["current_code"]); err != nil {
		return web.Reject(http.StatusBadRequest, err.Error())
	}
	err = h.signin.ChangePassword(r.Context(), w.Header(), sess, body["password"], body["current_code"], body["new_password"], rules, clientOf(r, in))
	if refusal, ok := err.(*signin.Refusal); ok && in.Format == web.HTML && !web.HasErrorRoutes(r) {
		page.Error = refusal.Reason
		_ = rejection(w, refusal)
		return h.site.Render(w, r, refusal.Status, "password.html", page)
	}
	if err != nil {
		return err
	}
	if in.Format == web.JSON {
		return h.site.JSON(w, r, http.StatusOK, map[string]bool{"changed": true})
	}
	web.Redirect(w, r, "/profile")
	return nil
}

// Account is a user who may sign in.
type Account struct {
	// The user's name.
	Username string `json:"username"`
	// The password hash in Modular Crypt Format as printed by `caddy
	// hash-password` (bcrypt `$2a$...` or argon2id `$argon2id$...`; both
	// kinds may be mixed); none for a user who signs in only through
	// `sign_in_with` providers. `{env.*}` and `{file.*}` placeholders in the
	// name and the hash are replaced at load time.
	Password string `json:"password,omitempty"`
	// The groups the user is in: `{http.miniapp.groups}` and the
	// `Remote-Groups` header of `/miniapp/auth` (comma-separated), and
	// its `group=` rules. Each 1 to 64 characters, without commas or
	// spaces.
	Groups []string `json:"groups,omitempty"`
	// The user's email address: `{http.miniapp.email}` and
	// `Remote-Email`.
	Email string `json:"email,omitempty"`
	// The user's display name: `{http.miniapp.name}` and `Remote-Name`.
	Name string `json:"name,omitempty"`
	// The identities at `sign_in_with` providers that sign in as the
	// user: the provider's stable ID of the person (OpenID Connect's
	// `sub`, GitHub's numeric user ID), or an e-mail address the provider
	// says is verified where its block says `link_by_email`. A user with
	// links may have no password hash: it signs in only through them
	// (and passkeys).
	Links []account.Link `json:"sign_in_with,omitempty"`
}
