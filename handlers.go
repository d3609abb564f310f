package miniapp

import (
	"net/http"
	"strings"

	"github.com/caddy-miniapp/miniapp/internal/account"
	"github.com/caddy-miniapp/miniapp/internal/gate"
	"github.com/caddy-miniapp/miniapp/internal/oidc"
	"github.com/caddy-miniapp/miniapp/internal/routes"
	"github.com/caddy-miniapp/miniapp/internal/web"
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// route answers one of the module's paths, given the request read once
// and its session (nil when there is none).
type route func(a *routes.App, w http.ResponseWriter, r *http.Request, in web.Request, sess *gate.Session) error

// asset is the route of a static file of the pages.
func asset(contentType string, body []byte) route {
	return func(_ *routes.App, w http.ResponseWriter, r *http.Request, _ web.Request, _ *gate.Session) error {
		return web.ServeAsset(w, r, contentType, body)
	}
}

// table is the module's own paths, matched exactly.
var table = map[string]route{
	"/hello":                (*routes.App).Hello,
	"/login":                (*routes.App).Login,
	"/profile":              (*routes.App).Profile,
	"/logout":               (*routes.App).Logout,
	routes.AuthPath:         (*routes.App).Auth,
	web.StylePath:           asset(web.TextCSS, web.Stylesheet),
	web.StablePath:          asset(web.TextCSS, web.Stylesheet),
	web.ScriptPath:          asset(web.TextJavaScript, web.PasskeyScript),
	web.FaviconPath:         asset(web.ImageSVG, web.Favicon),
	routes.TOTPPath:         (*routes.App).SecondFactor,
	routes.PasskeysPath:     (*routes.App).ManagePasskeys,
	routes.LoginPasskeyPath: (*routes.App).LoginPasskey,
	routes.InvitePath:       (*routes.App).Invite,
	routes.PasswordPath:     (*routes.App).ChangePassword,
	routes.TrustPath:        (*routes.App).Untrust,
	web.InviteScriptPath:    asset(web.TextJavaScript, web.InviteScript),
}

// ServeHTTP reads the session once and sets the user placeholders,
// answers the module's own routes, guards the protected paths and passes
// every other request on.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	wire := routes.WireOf(r)
	sess := h.sessionOf(r, wire)
	// login and logout set a cookie of their own; the headers of the
	// auth endpoint's answer never reach the browser
	if sess != nil && r.URL.Path != "/login" && r.URL.Path != "/logout" && r.URL.Path != routes.AuthPath {
		h.app.Gate.Renew(w.Header(), wire, sess)
	}
	openID := h.app.Provider != nil && oidc.Serves(r.URL.Path)
	if sess != nil && h.app.SignIn.MustEnrol(sess) && !enrolPaths[r.URL.Path] && !web.AssetPaths[r.URL.Path] && !openID &&
		!strings.HasPrefix(r.URL.Path, routes.SignInWithPrefix) {
		return h.enrolFirst(w, r, sess, next)
	}
	setPlaceholders(r, sess)
	answer, own := table[r.URL.Path]
	switch {
	case openID:
		answer, own = (*routes.App).OpenID, true
	case !own && h.app.IdP != nil && strings.HasPrefix(r.URL.Path, routes.SignInWithPrefix):
		answer, own = (*routes.App).SignInWith, true
	}
	if !own {
		if len(h.protected) == 0 || !h.protected.Match(r) {
			return next.ServeHTTP(w, r)
		}
		if sess != nil {
			privateContent(w.Header())
			return next.ServeHTTP(w, r)
		}
		answer = (*routes.App).SignInFirst
	}
	in := web.ReadOn(r, wire.Secure, wire.Host)
	if err := answer(h.app, w, r, in, sess); err != nil {
		return h.app.Fail(w, r, in.Format, err)
	}
	return nil
}

// enrolPaths are the paths a session that must enrol may use.
var enrolPaths = map[string]bool{routes.TOTPPath: true, routes.PasskeysPath: true, "/login": true, routes.LoginPasskeyPath: true, "/logout": true, "/hello": true, routes.AuthPath: true}

// enrolFirst answers a request of a session that may only set up a
// second factor: the profile and protected paths send browsers to the
// setup page (or, when the account has a factor already, to sign in
// again with it) and refuse other clients; the rest goes on as for an
// anonymous request.
func (h *Handler) enrolFirst(w http.ResponseWriter, r *http.Request, sess *gate.Session, next caddyhttp.Handler) error {
	_, own := table[r.URL.Path]
	if !own && (len(h.protected) == 0 || !h.protected.Match(r)) {
		setPlaceholders(r, nil)
		return next.ServeHTTP(w, r)
	}
	in := web.Read(r)
	var err error
	switch {
	case h.app.SignIn.HasFactor(sess.Account):
		// a session from before the factor: sign in again with it
		err = h.app.SignInFirst(w, r, in, nil)
	case in.Format == web.HTML:
		web.Redirect(w, r, routes.TOTPPath)
	default:
		err = web.Reject(http.StatusForbidden, "second factor enrollment required")
	}
	if err != nil {
		return h.app.Fail(w, r, in.Format, err)
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
