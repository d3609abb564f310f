package routes

import (
	"net/http"
	"net/url"

	"github.com/caddy-miniapp/miniapp/internal/gate"

	"github.com/caddy-miniapp/miniapp/internal/web"

	"github.com/caddy-miniapp/miniapp/internal/sso"
)

// AuthPath is the endpoint that other sites, in this Caddy or another
// server, ask through forward_auth (or nginx's auth_request) whether a
// request's session is valid.
const AuthPath = "/miniapp/auth"

// Auth answers whether the request that forward_auth or auth_request
// forwards carries a valid session for the site it was sent to (see
// internal/sso): 200 with Remote-* headers, 403 when a rule of the
// endpoint's own query refuses the user, and without a session a
// redirect to the login page for a browser or 401 for any other client
// (401 with the login page in Location for nginx, which takes no
// redirect from it).
func (a *App) Auth(w http.ResponseWriter, r *http.Request, in web.Request, sess *gate.Session) error {
	if err := web.Allow(w, r, "GET, HEAD", http.MethodGet, http.MethodHead); err != nil {
		return err
	}
	check := readCheck(r, in)
	rules, err := sso.ParseRules(check.Query)
	if err != nil {
		return web.Reject(http.StatusBadRequest, err.Error())
	}
	for _, name := range rules.Ignored {
		a.ignored.Warn(a.Logger, a.Clock.Now(), name)
	}
	w.Header()["Cache-Control"] = noStore
	browser := in.HTML
	var facts *sso.Session
	if sess != nil {
		facts = &sso.Session{Account: sess.Account, Factors: sess.Factors, MustEnrol: a.SignIn.MustEnrol(sess),
			HasFactor: func() bool { return a.SignIn.HasFactor(sess.Account) }}
	}
	decision := sso.Decide(rules, facts, sess != nil && a.Gate.Covers(WireOf(r), check.OriginalHost()), browser)
	switch decision.Verdict {
	case sso.SignIn:
		original, nginx := check.Original()
		return a.authSignIn(w, r, in, original, nginx, browser)
	case sso.Enrol:
		w.Header().Set("Location", a.domain.LoginSite()+TOTPPath)
		if check.OriginalURL != "" {
			// auth_request takes 2xx, 401 and 403 alone
			return web.Reject(http.StatusUnauthorized, "second factor enrollment required")
		}
		web.Write(w, r, http.StatusFound, web.TextPlain, []byte("Found\n"))
		return nil
	case sso.NotAllowed:
		if browser && !web.HasErrorRoutes(r) {
			return a.notAllowed(w, r, in, sess, check)
		}
		return web.Reject(http.StatusForbidden, decision.Reason)
	case sso.Refuse:
		return web.Reject(http.StatusForbidden, decision.Reason)
	}
	a.Gate.KeepAlive(r.Context(), sess)
	header := w.Header()
	setRemote(header, "Remote-User", sess.Account.Name)
	setRemote(header, "Remote-Groups", sess.Account.GroupList)
	setRemote(header, "Remote-Email", sess.Account.Email)
	setRemote(header, "Remote-Name", sess.Account.FullName)
	w.WriteHeader(http.StatusOK)
	return nil
}

// readCheck reads the forwarded request once, for the decision.
func readCheck(r *http.Request, in web.Request) sso.Check {
	return sso.Check{Query: r.URL.RawQuery, Host: r.Host, Secure: in.Secure, ForwardedProto: r.Header.Get("X-Forwarded-Proto"),
		ForwardedHost: r.Header.Get("X-Forwarded-Host"), ForwardedURI: r.Header.Get("X-Forwarded-Uri"), OriginalURL: r.Header.Get("X-Original-URL")}
}

// setRemote sets a Remote-* header, or leaves it out when empty.
func setRemote(header http.Header, name, value string) {
	if value != "" {
		header[name] = []string{value}
	}
}

// notAllowed answers a browser whom a site's rules refuse: 403 with a
// page whose stylesheet, icon and links come from the login site (the
// site asked about would answer 403 again), offering to sign in as
// someone else: sign out on the login site, then its login page with
// next.
func (a *App) notAllowed(w http.ResponseWriter, r *http.Request, in web.Request, sess *gate.Session, check sso.Check) error {
	original, _ := check.Original()
	// without cookie_domain the site asked about is this one: its own
	// sign-out form, a same-origin POST, goes on to the login page
	again := a.domain.SignInURL(a.domain.Next(original, in.Host))
	site := ""
	if a.domain.Name != "" {
		// another site of the domain: the login site's sign-out page,
		// whose form signs out and goes on to next
		site = a.domain.LoginSite()
		again = site + "/logout?next=" + url.QueryEscape(again)
	}
	w.Header().Set("Content-Security-Policy", a.domain.PolicyFor(site))
	title := web.Describe(http.StatusForbidden)
	return a.Site.Render(w, r, http.StatusForbidden, "forbidden.html", web.PageData{Title: title, Status: title, User: sess.User, Base: site, Next: again})
}

// authSignIn answers a forwarded request without a valid session for
// its site.
func (a *App) authSignIn(w http.ResponseWriter, r *http.Request, in web.Request, original *url.URL, nginx, browser bool) error {
	next := a.domain.Next(original, in.Host)
	switch {
	case nginx && browser:
		// auth_request takes 2xx, 401 and 403 alone; error_page 401 with
		// auth_request_set can send the browser to Location
		w.Header().Set("Location", a.domain.SignInURL(next))
	case browser:
		w.Header().Set("Location", a.domain.SignInURL(next))
		web.Write(w, r, http.StatusFound, web.TextPlain, []byte("Found\n"))
		return nil
	}
	w.Header().Set("WWW-Authenticate", a.challenge(r))
	return web.Reject(http.StatusUnauthorized, "sign in required")
}

// noStore is the Cache-Control of the endpoint's answers, shared and
// capped so that an Add copies it.
var noStore = []string{"no-store"}[:1:1]
