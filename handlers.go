package miniapp

import (
	"cmp"
	"errors"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/records"

	"github.com/caddy-miniapp/miniapp/internal/account"
	"github.com/caddy-miniapp/miniapp/internal/guard"
	"github.com/caddy-miniapp/miniapp/internal/web"
	"github.com/caddy-miniapp/miniapp/store"
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
)

// route answers one of the module's paths, given the format negotiated
// for the request and its session (nil when there is none).
type route func(h *Handler, w http.ResponseWriter, r *http.Request, f web.Format, sess *signedIn) error

// asset is the route of a static file of the pages.
func asset(contentType string, body []byte) route {
	return func(_ *Handler, w http.ResponseWriter, r *http.Request, _ web.Format, _ *signedIn) error {
		return web.ServeAsset(w, r, contentType, body)
	}
}

// routes are the module's own paths, matched exactly.
var routes = map[string]route{
	"/hello":        (*Handler).hello,
	"/login":        (*Handler).login,
	"/profile":      (*Handler).profile,
	"/logout":       (*Handler).logout,
	authPath:        (*Handler).auth,
	web.StylePath:   asset(web.TextCSS, web.Stylesheet),
	web.ScriptPath:  asset(web.TextJavaScript, web.PasskeyScript),
	web.FaviconPath: asset(web.ImageSVG, web.Favicon),
	totpPath:        (*Handler).totp,
	// passkeys
	passkeysPath:     (*Handler).passkeys,
	loginPasskeyPath: (*Handler).loginPasskey,
}

// ServeHTTP reads the session once and sets the user placeholders,
// answers the module's own routes, guards the protected paths and passes
// every other request on.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	sess := h.sessionOf(r)
	// login and logout set a cookie of their own; the headers of the
	// auth endpoint's answer never reach the browser
	if sess != nil && r.URL.Path != "/login" && r.URL.Path != "/logout" && r.URL.Path != authPath {
		h.renew(w, r, sess)
	}
	if sess != nil && h.mustEnrol(sess) && !enrolPaths[r.URL.Path] && !web.AssetPaths[r.URL.Path] {
		return h.enrolFirst(w, r, sess, func() error { return next.ServeHTTP(w, r) })
	}
	setPlaceholders(r, sess)
	answer, own := routes[r.URL.Path]
	if !own {
		if len(h.protected) == 0 || !h.protected.Match(r) {
			return next.ServeHTTP(w, r)
		}
		if sess != nil {
			privateContent(w.Header())
			return next.ServeHTTP(w, r)
		}
		answer = (*Handler).signInFirst
	}
	f := web.Read(r).Format
	if err := answer(h, w, r, f, sess); err != nil {
		return h.site.Fail(w, r, f, err)
	}
	return nil
}

// privateContent marks a response of content behind the login as for
// this user's browser only (a renewed cookie has made it no-store
// already) and as varying with the cookie. Both values share one
// allocation, as in write.
func privateContent(h http.Header) {
	v := [...]string{"private", "Cookie"}
	if len(h["Cache-Control"]) == 0 {
		h["Cache-Control"] = v[0:1:1]
	}
	if len(h["Vary"]) == 0 {
		h["Vary"] = v[1:2:2]
	} else {
		h["Vary"] = append(h["Vary"], "Cookie")
	}
}

// setPlaceholders provides {http.miniapp.user}, {http.miniapp.groups}
// (comma-separated), {http.miniapp.email}, {http.miniapp.name} and
// {http.miniapp.factors} (1 or 2: how the session began), empty when
// nobody is signed in, and sets {http.auth.user.id}, which Caddy's access
// log shows as user_id, only when someone is, so an identity set by an
// earlier handler stays. The first handler of a request gives the
// miniapp values when asked for, by one provider: five values set on
// every request cost more than the few requests that read them. A later
// one (another realm in the first one's routes) sets its values, which
// are read before provided ones: the last handler's session shows.
func setPlaceholders(r *http.Request, sess *signedIn) {
	repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if !ok {
		return
	}
	values := caddy.ReplacerFunc(anonymousPlaceholders)
	if sess != nil {
		p, factors := &sess.acct.Placeholders, factorValues[min(sess.Factors, 2)]
		repl.Set("http.auth.user.id", p.User)
		values = func(key string) (any, bool) { return placeholder(p, factors, key) }
	}
	if caddyhttp.GetVar(r.Context(), placeholdersVar) != nil {
		for _, key := range placeholderKeys {
			v, _ := values(key)
			repl.Set(key, v)
		}
		return
	}
	caddyhttp.SetVar(r.Context(), placeholdersVar, true)
	repl.Map(values)
}

// placeholdersVar is the request variable that says a handler provides
// the miniapp placeholders already.
const placeholdersVar = "miniapp_placeholders"

// The miniapp placeholders.
const (
	userPlaceholder    = "http.miniapp.user"
	groupsPlaceholder  = "http.miniapp.groups"
	emailPlaceholder   = "http.miniapp.email"
	namePlaceholder    = "http.miniapp.name"
	factorsPlaceholder = "http.miniapp.factors"
)

// placeholderKeys are the miniapp placeholders.
var placeholderKeys = [...]string{userPlaceholder, groupsPlaceholder, emailPlaceholder, namePlaceholder, factorsPlaceholder}

// placeholder is the value of the miniapp placeholder key for the
// account's placeholders and the session's factors.
func placeholder(p *account.Placeholders, factors any, key string) (any, bool) {
	switch key {
	case userPlaceholder:
		return p.User, true
	case groupsPlaceholder:
		return p.Groups, true
	case emailPlaceholder:
		return p.Email, true
	case namePlaceholder:
		return p.Name, true
	case factorsPlaceholder:
		return factors, true
	}
	return nil, false
}

// factorText is a session's factors as text, made once; factorValues
// the same as placeholder values, boxed once.
var (
	factorText   = [3]string{"1", "1", "2"}
	factorValues = [3]any{factorText[0], factorText[1], factorText[2]}
)

// anonymousPlaceholders gives the miniapp placeholders of a request
// without a session: all empty.
func anonymousPlaceholders(key string) (any, bool) {
	return placeholder(&noPlaceholders, "", key)
}

// noPlaceholders are the placeholder values of an anonymous request.
var noPlaceholders = account.Placeholders{User: "", Groups: "", Email: "", Name: ""}

// sameOrigin refuses cross-site POSTs with 403.
func (h *Handler) sameOrigin(r *http.Request) error {
	if h.csrf.Check(r) != nil {
		return web.Reject(http.StatusForbidden, "cross-origin request refused")
	}
	return nil
}

// hello greets name, from the query or else from a form or JSON body.
func (h *Handler) hello(w http.ResponseWriter, r *http.Request, f web.Format, _ *signedIn) error {
	if err := web.Allow(w, r, "GET, HEAD, POST", http.MethodGet, http.MethodHead, http.MethodPost); err != nil {
		return err
	}
	name, err := web.FormValue(r.URL.RawQuery, "name")
	if err != nil {
		return err
	}
	if r.Method == http.MethodPost {
		if err := h.sameOrigin(r); err != nil {
			return err
		}
		in, err := web.ReadFields(w, r, h.MaxBodySize, "name")
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
	if f == web.JSON {
		return h.site.JSON(w, r, http.StatusOK, struct {
			Message string `json:"message"`
		}{"Hello, " + name + "!"})
	}
	body := make([]byte, 0, len("Hello, !")+len(name))
	body = append(append(append(body, "Hello, "...), name...), '!')
	web.Write(w, r, http.StatusOK, web.TextPlain, body)
	return nil
}

// login shows the form (GET; with step=code, the code form of a pending
// sign-in) or signs in (POST). A POST reads top to bottom: the input
// once, a place from the guard, the password from the accounts, the
// second factor when the account has one, a new session, the answer. A
// POST of a code alone finishes a pending sign-in.
func (h *Handler) login(w http.ResponseWriter, r *http.Request, f web.Format, _ *signedIn) error {
	if err := web.Allow(w, r, "GET, HEAD, POST", http.MethodGet, http.MethodHead, http.MethodPost); err != nil {
		return err
	}
	if r.Method != http.MethodPost {
		next, err := web.FormValue(r.URL.RawQuery, "next")
		if err != nil {
			return err
		}
		data := web.PageData{Title: "Sign in", Next: h.safeNext(r, next), Passkey: h.passkeysOn()}
		if step, _ := web.FormValue(r.URL.RawQuery, "step"); step == "code" {
			if p, _ := h.pendingOf(r); p != nil {
				data.Title, data.CodeStep = "Enter your code", true
				w.Header().Set("Cache-Control", "no-store")
			}
		}
		return h.site.Render(w, r, http.StatusOK, "login.html", data)
	}
	in, err := h.readLogin(w, r)
	if err != nil {
		return err
	}
	if in.pending != nil {
		return h.finishCode(w, r, f, in)
	}
	place, wait, err := h.guard.Enter(r.Context(), h.guardLogin(in), h.clock.Now())
	switch {
	case errors.Is(err, guard.ErrNoSlot):
		return h.tooMany(w, in, wait, "login refused: too many password checks in progress", "too many logins in progress; try again shortly")
	case errors.Is(err, guard.ErrBusy):
		return h.tooMany(w, in, wait, "login refused: too many logins from this client in progress", "too many logins from this client in progress; try again shortly")
	case err != nil:
		return h.tooMany(w, in, wait, "login throttled", err.Error())
	}
	acct, reason, err := h.accounts.Check(in.name, in.password)
	place.Leave(reason != "")
	if err != nil {
		return err
	}
	if acct == nil {
		return h.loginFailed(w, r, f, in, reason)
	}
	hasTOTP, err := h.shared.RecordNow(r.Context(), factorKey(acct.Name))
	if err != nil {
		// whether the account has a second factor cannot be known
		return h.codeFailed(w, r, acct.Name, http.StatusUnauthorized, records.StoreFailed{Err: err})
	}
	if hasTOTP == nil {
		return h.signIn(w, r, f, acct, in, "")
	}
	if in.code == "" {
		return h.askCode(w, r, f, acct, in)
	}
	kind, err := h.checkCode(r.Context(), in, acct.Name)
	if err != nil {
		// the password was right: the code alone may follow
		h.setPending(w, r, acct)
		return h.codeStepFailed(w, r, f, acct.Name, in, err)
	}
	return h.signIn(w, r, f, acct, in, kind)
}

// signIn starts the session of a password sign-in that is complete:
// with two factors when a code (of kind) was accepted, and answers it.
func (h *Handler) signIn(w http.ResponseWriter, r *http.Request, f web.Format, acct *account.Account, in loginInput, kind account.CodeKind) error {
	factors := uint8(1)
	if kind != "" {
		factors = 2
		h.count(metrics.secondFactor, "success", string(kind))
	}
	sess := h.signInWith(w, r, acct, in, factors, "password")
	if f == web.JSON {
		return h.site.JSON(w, r, http.StatusOK, map[string]string{"username": acct.Name})
	}
	next := cmp.Or(in.next, "/profile")
	if h.mustEnrol(sess) {
		next = totpPath
	}
	web.Redirect(w, r, next)
	return nil
}

// signInWith starts the session of a complete sign-in (by password or
// passkey), counted and logged.
func (h *Handler) signInWith(w http.ResponseWriter, r *http.Request, acct *account.Account, in loginInput, factors uint8, method string) *signedIn {
	sess := h.startSession(r.Context(), w, r, acct, in, factors)
	h.count(metrics.logins, "success")
	h.logger.Info("login", zap.String("user", acct.Name), zap.String("client_ip", in.ip), zap.Uint8("factors", factors), zap.String("method", method))
	w.Header().Set("Cache-Control", "no-store")
	return sess
}

// loginFailed answers a wrong password or an unknown name alike, counted
// and logged with the reason.
func (h *Handler) loginFailed(w http.ResponseWriter, r *http.Request, f web.Format, in loginInput, reason string) error {
	h.count(metrics.logins, "failure")
	h.logger.Warn("login failed", h.userFields(in.name, zap.String("client_ip", in.ip), zap.String("reason", reason))...)
	const msg = "invalid username or password"
	w.Header().Set("WWW-Authenticate", h.challenge(r))
	switch f {
	case web.JSON:
		return h.site.JSON(w, r, http.StatusUnauthorized, map[string]string{"error": msg})
	case web.HTML:
		return h.site.Render(w, r, http.StatusUnauthorized, "login.html", web.PageData{Title: "Sign in", Error: msg, Next: in.next, User: in.name, Passkey: h.passkeysOn()})
	}
	return web.Reject(http.StatusUnauthorized, msg)
}

// userFields are the log fields of a refused login's user name, then
// more: a name that is not a configured user is often a password typed
// in the wrong field, so it is logged as "unknown user" with its length
// alone.
func (h *Handler) userFields(name string, more ...zap.Field) []zap.Field {
	if _, known := h.accounts.Lookup(name); known || name == "" {
		return append([]zap.Field{zap.String("user", name)}, more...)
	}
	return append([]zap.Field{zap.String("user", "unknown user"), zap.Int("user_length", len(name))}, more...)
}

// tooMany refuses a login with 429 and Retry-After, counted and logged.
func (h *Handler) tooMany(w http.ResponseWriter, in loginInput, wait time.Duration, event, reason string) error {
	h.count(metrics.logins, "throttled")
	h.logger.Warn(event, h.userFields(in.name, zap.String("client_ip", in.ip))...)
	w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
	return web.Reject(http.StatusTooManyRequests, reason)
}

// signInFirst answers a request that needs a session: browsers go to the
// login page and come back afterwards, other clients get 401.
func (h *Handler) signInFirst(w http.ResponseWriter, r *http.Request, f web.Format, _ *signedIn) error {
	if f == web.HTML {
		next := r.URL.RequestURI()
		if h.domain.name != "" {
			// the login site is another host: come back to this one
			next = web.URL(r)
		}
		web.Redirect(w, r, h.signInURL(next))
		return nil
	}
	w.Header().Set("WWW-Authenticate", h.challenge(r))
	return web.Reject(http.StatusUnauthorized, "sign in required")
}

// challenge is the WWW-Authenticate value of a 401: there is no standard
// scheme for a login form, so it follows the cookie authentication draft
// (draft-broyer-http-cookie-auth) in naming the form and the cookie.
func (h *Handler) challenge(r *http.Request) string {
	return `Cookie realm="` + h.Realm + `", form-action="` + h.domain.loginURL + `", cookie-name="` + h.cookieName(r) + `"`
}

// logout ends the session (or, with all=1, every session of the user),
// clears the cookie and goes on to next or the login page; with
// session=<id> it ends that other session of the user instead, and goes
// back to the profile. With cookie_domain, GET shows a page whose form
// does the same.
func (h *Handler) logout(w http.ResponseWriter, r *http.Request, f web.Format, sess *signedIn) error {
	if h.domain.name == "" {
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
		data := web.PageData{Title: "Sign out", Next: h.safeNext(r, next)}
		if sess != nil {
			data.User = sess.User
		}
		return h.site.Render(w, r, http.StatusOK, "logout.html", data)
	}
	if err := h.sameOrigin(r); err != nil {
		return err
	}
	in, err := web.ReadFields(w, r, h.MaxBodySize, "all", "session", "next")
	if err != nil {
		return err
	}
	if in["session"] != "" {
		id, err := parseSessionID(in["session"])
		if err != nil {
			return err
		}
		if sess == nil || id != sess.ID {
			return h.endOther(w, r, f, sess, id)
		}
	}
	everywhere := in["all"] == "1"
	if sess != nil {
		h.shared.Revoke(r.Context(), sess.ID, sess.Expires)
		if everywhere {
			h.shared.SignOutEverywhere(r.Context(), store.AccountID(sess.acct.ID))
		}
		h.count(metrics.logouts)
		h.logger.Info("logout", zap.String("user", sess.User), zap.String("client_ip", web.ClientIP(r)), zap.Bool("everywhere", everywhere))
	}
	h.clearCookie(w, r)
	web.Redirect(w, r, cmp.Or(h.safeNext(r, in["next"]), h.domain.loginURL))
	return nil
}
