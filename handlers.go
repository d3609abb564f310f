package miniapp

import (
	"cmp"
	"errors"
	"net/http"
	"strings"

	"github.com/caddy-miniapp/miniapp/internal/account"
	"github.com/caddy-miniapp/miniapp/internal/gate"
	"github.com/caddy-miniapp/miniapp/internal/oidc"
	"github.com/caddy-miniapp/miniapp/internal/signin"
	"github.com/caddy-miniapp/miniapp/internal/web"
	"github.com/caddy-miniapp/miniapp/store"
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
)

// route answers one of the module's paths, given the request read once
// and its session (nil when there is none).
type route func(h *Handler, w http.ResponseWriter, r *http.Request, in web.Request, sess *gate.Session) error

// asset is the route of a static file of the pages.
func asset(contentType string, body []byte) route {
	return func(_ *Handler, w http.ResponseWriter, r *http.Request, _ web.Request, _ *gate.Session) error {
		return web.ServeAsset(w, r, contentType, body)
	}
}

// routes are the module's own paths, matched exactly.
var routes = map[string]route{
	"/hello":             (*Handler).hello,
	"/login":             (*Handler).login,
	"/profile":           (*Handler).profile,
	"/logout":            (*Handler).logout,
	authPath:             (*Handler).auth,
	web.StylePath:        asset(web.TextCSS, web.Stylesheet),
	web.StablePath:       asset(web.TextCSS, web.Stylesheet),
	web.ScriptPath:       asset(web.TextJavaScript, web.PasskeyScript),
	web.FaviconPath:      asset(web.ImageSVG, web.Favicon),
	totpPath:             (*Handler).secondFactor,
	passkeysPath:         (*Handler).managePasskeys,
	loginPasskeyPath:     (*Handler).loginPasskey,
	invitePath:           (*Handler).invite,
	passwordPath:         (*Handler).changePassword,
	trustPath:            (*Handler).untrust,
	web.InviteScriptPath: asset(web.TextJavaScript, web.InviteScript),
}

// ServeHTTP reads the session once and sets the user placeholders,
// answers the module's own routes, guards the protected paths and passes
// every other request on.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	wire := wireOf(r)
	sess := h.sessionOf(r, wire)
	// login and logout set a cookie of their own; the headers of the
	// auth endpoint's answer never reach the browser
	if sess != nil && r.URL.Path != "/login" && r.URL.Path != "/logout" && r.URL.Path != authPath {
		h.gate.Renew(w.Header(), wire, sess)
	}
	openID := h.provider != nil && oidc.Serves(r.URL.Path)
	if sess != nil && h.signin.MustEnrol(sess) && !enrolPaths[r.URL.Path] && !web.AssetPaths[r.URL.Path] && !openID &&
		!strings.HasPrefix(r.URL.Path, signInWithPrefix) {
		return h.enrolFirst(w, r, sess, next)
	}
	setPlaceholders(r, sess)
	answer, own := routes[r.URL.Path]
	switch {
	case openID:
		answer, own = (*Handler).openID, true
	case !own && h.idp != nil && strings.HasPrefix(r.URL.Path, signInWithPrefix):
		answer, own = (*Handler).signInWith, true
	}
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
	in := web.Read(r)
	if err := answer(h, w, r, in, sess); err != nil {
		return h.fail(w, r, in.Format, err)
	}
	return nil
}

// fail answers a route's error as the site answers errors.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, f web.Format, err error) error {
	return h.site.Fail(w, r, f, rejection(w, err))
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

// enrolPaths are the paths a session that must enrol may use.
var enrolPaths = map[string]bool{totpPath: true, passkeysPath: true, "/login": true, loginPasskeyPath: true, "/logout": true, "/hello": true, authPath: true}

// enrolFirst answers a request of a session that may only set up a
// second factor: the profile and protected paths send browsers to the
// setup page (or, when the account has a factor already, to sign in
// again with it) and refuse other clients; the rest goes on as for an
// anonymous request.
func (h *Handler) enrolFirst(w http.ResponseWriter, r *http.Request, sess *gate.Session, next caddyhttp.Handler) error {
	_, own := routes[r.URL.Path]
	if !own && (len(h.protected) == 0 || !h.protected.Match(r)) {
		setPlaceholders(r, nil)
		return next.ServeHTTP(w, r)
	}
	in := web.Read(r)
	var err error
	switch {
	case h.signin.HasFactor(sess.Account):
		// a session from before the factor: sign in again with it
		err = h.signInFirst(w, r, in, nil)
	case in.Format == web.HTML:
		web.Redirect(w, r, totpPath)
	default:
		err = web.Reject(http.StatusForbidden, "second factor enrollment required")
	}
	if err != nil {
		return h.fail(w, r, in.Format, err)
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
func setPlaceholders(r *http.Request, sess *gate.Session) {
	repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if !ok {
		return
	}
	values := caddy.ReplacerFunc(anonymousPlaceholders)
	if sess != nil {
		p, factors := &sess.Account.Placeholders, factorValues[min(sess.Factors, 2)]
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

// factorValues are a session's factors as placeholder values, boxed
// once.
var factorValues = [3]any{gate.FactorText[0], gate.FactorText[1], gate.FactorText[2]}

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
func (h *Handler) hello(w http.ResponseWriter, r *http.Request, in web.Request, _ *gate.Session) error {
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
	if in.Format == web.JSON {
		return h.site.JSON(w, r, http.StatusOK, struct {
			Message string `json:"message"`
		}{"Hello, " + name + "!"})
	}
	body := make([]byte, 0, len("Hello, !")+len(name))
	body = append(append(append(body, "Hello, "...), name...), '!')
	web.Write(w, r, http.StatusOK, web.TextPlain, body)
	return nil
}

// signInFirst answers a request that needs a session: browsers go to the
// login page and come back afterwards, other clients get 401.
func (h *Handler) signInFirst(w http.ResponseWriter, r *http.Request, in web.Request, _ *gate.Session) error {
	if in.Format == web.HTML {
		next := r.URL.RequestURI()
		if h.domain.Name != "" {
			// the login site is another host: come back to this one
			next = web.URL(r)
		}
		web.Redirect(w, r, h.domain.SignInURL(next))
		return nil
	}
	w.Header().Set("WWW-Authenticate", h.challenge(r))
	return web.Reject(http.StatusUnauthorized, "sign in required")
}

// challenge is the WWW-Authenticate value of a 401: there is no standard
// scheme for a login form, so it follows the cookie authentication draft
// (draft-broyer-http-cookie-auth) in naming the form and the cookie.
func (h *Handler) challenge(r *http.Request) string {
	return `Cookie realm="` + h.Realm + `", form-action="` + h.domain.LoginURL + `", cookie-name="` + h.gate.CookieName(wireOf(r)) + `"`
}

// logout ends the session (or, with all=1, every session of the user),
// clears the cookie and goes on to next or the login page; with
// session=<id> it ends that other session of the user instead, and goes
// back to the profile. With cookie_domain, GET shows a page whose form
// does the same.
func (h *Handler) logout(w http.ResponseWriter, r *http.Request, in web.Request, sess *gate.Session) error {
	if h.domain.Name == "" {
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
		data := web.PageData{Title: "Sign out", Next: h.domain.SafeNext(next, in.Secure)}
		if sess != nil {
			data.User = sess.User
		}
		return h.site.Render(w, r, http.StatusOK, "logout.html", data)
	}
	if err := h.sameOrigin(r); err != nil {
		return err
	}
	body, err := web.ReadFields(w, r, h.MaxBodySize, "all", "session", "next")
	if err != nil {
		return err
	}
	if body["session"] != "" {
		id, err := gate.ParseSessionID(body["session"])
		if err != nil {
			return web.Reject(http.StatusBadRequest, err.Error())
		}
		if sess == nil || id != sess.ID {
			return h.endOther(w, r, in, sess, id)
		}
	}
	h.signOut(w, r, in, sess, body["all"] == "1")
	web.Redirect(w, r, cmp.Or(h.domain.SafeNext(body["next"], in.Secure), h.domain.LoginURL))
	return nil
}

// signOut ends the browser's session (nil: none), or with everywhere
// every session of its user, and clears its cookie.
func (h *Handler) signOut(w http.ResponseWriter, r *http.Request, in web.Request, sess *gate.Session, everywhere bool) {
	if sess != nil {
		h.shared.Revoke(r.Context(), sess.ID, sess.Expires)
		ended := sess.ID[:]
		if everywhere {
			h.shared.SignOutEverywhere(r.Context(), store.AccountID(sess.Account.ID))
			h.endTrusts(r, sess.User)
			ended = nil
		}
		if h.provider != nil {
			h.provider.LoggedOut(sess.User, ended)
		}
		h.count(metrics.logouts)
		h.logger.Info("logout", zap.String("user", sess.User), zap.String("client_ip", in.Client), zap.Bool("everywhere", everywhere))
	}
	h.gate.End(w.Header(), wireOf(r))
}
