package miniapp

import (
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/gate"

	"github.com/caddy-miniapp/miniapp/internal/web"

	"github.com/caddy-miniapp/miniapp/internal/account"
	"github.com/caddy-miniapp/miniapp/internal/sso"
	"go.uber.org/zap"
)

// authPath is the endpoint that other sites, in this Caddy or another
// server, ask through forward_auth (or nginx's auth_request) whether a
// request's session is valid.
const authPath = "/miniapp/auth"

// auth answers whether the request that forward_auth or auth_request
// forwards carries a valid session for the site it was sent to (see
// internal/sso): 200 with Remote-* headers, 403 when a rule of the
// endpoint's own query refuses the user, and without a session a
// redirect to the login page for a browser or 401 for any other client
// (401 with the login page in Location for nginx, which takes no
// redirect from it).
func (h *Handler) auth(w http.ResponseWriter, r *http.Request, in web.Request, sess *gate.Session) error {
	if err := web.Allow(w, r, "GET, HEAD", http.MethodGet, http.MethodHead); err != nil {
		return err
	}
	check := readCheck(r, in)
	rules, err := sso.ParseRules(check.Query)
	if err != nil {
		return web.Reject(http.StatusBadRequest, err.Error())
	}
	for _, name := range rules.Ignored {
		h.ignoredRules.warn(h.logger, h.clock.Now(), name)
	}
	w.Header()["Cache-Control"] = noStore
	browser := in.HTML
	var facts *sso.Session
	if sess != nil {
		facts = &sso.Session{Account: sess.Account, Factors: sess.Factors, MustEnrol: h.signin.MustEnrol(sess),
			HasFactor: func() bool { return h.signin.HasFactor(sess.Account) }}
	}
	decision := sso.Decide(rules, facts, sess != nil && h.gate.Covers(wireOf(r), check.OriginalHost()), browser)
	switch decision.Verdict {
	case sso.SignIn:
		original, nginx := check.Original()
		return h.authSignIn(w, r, in, original, nginx, browser)
	case sso.Enrol:
		w.Header().Set("Location", h.loginSite()+totpPath)
		if check.OriginalURL != "" {
			// auth_request takes 2xx, 401 and 403 alone
			return web.Reject(http.StatusUnauthorized, "second factor enrollment required")
		}
		web.Write(w, r, http.StatusFound, web.TextPlain, []byte("Found\n"))
		return nil
	case sso.NotAllowed:
		if browser && !web.HasErrorRoutes(r) {
			return h.notAllowed(w, r, in, sess, check)
		}
		return web.Reject(http.StatusForbidden, decision.Reason)
	case sso.Refuse:
		return web.Reject(http.StatusForbidden, decision.Reason)
	}
	h.gate.KeepAlive(r.Context(), sess)
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

// authNext is where the login page sends a browser back to after
// signing in for the forwarded request: its original URL when the
// session cookie covers it, else /profile.
func (h *Handler) authNext(r *http.Request, in web.Request, original *url.URL) string {
	next := "/profile"
	if host := original.Hostname(); h.gate.Covers(gate.Wire{Host: in.Host}, host) {
		next = original.String()
		if h.domain.name == "" {
			next = original.RequestURI() // the login page takes paths alone then
		}
	}
	if len(next) > web.MaxFieldLen {
		next = "/profile"
	}
	return next
}

// notAllowed answers a browser whom a site's rules refuse: 403 with a
// page whose stylesheet, icon and links come from the login site (the
// site asked about would answer 403 again), offering to sign in as
// someone else: sign out on the login site, then its login page with
// next.
func (h *Handler) notAllowed(w http.ResponseWriter, r *http.Request, in web.Request, sess *gate.Session, check sso.Check) error {
	original, _ := check.Original()
	// without cookie_domain the site asked about is this one: its own
	// sign-out form, a same-origin POST, goes on to the login page
	again := h.signInURL(h.authNext(r, in, original))
	csp := h.site.Policy()
	site := ""
	if h.domain.name != "" {
		// another site of the domain: the login site's sign-out page,
		// whose form signs out and goes on to next
		site = h.loginSite()
		again = site + "/logout?next=" + url.QueryEscape(again)
		csp = strings.Replace(strings.Replace(csp, "style-src 'self'", "style-src 'self' "+site, 1), "img-src 'self'", "img-src 'self' "+site, 1)
	}
	w.Header().Set("Content-Security-Policy", csp)
	title := web.Describe(http.StatusForbidden)
	return h.site.Render(w, r, http.StatusForbidden, "forbidden.html", web.PageData{Title: title, Status: title, User: sess.User, Base: site, Next: again})
}

// authSignIn answers a forwarded request without a valid session for
// its site.
func (h *Handler) authSignIn(w http.ResponseWriter, r *http.Request, in web.Request, original *url.URL, nginx, browser bool) error {
	next := h.authNext(r, in, original)
	switch {
	case nginx && browser:
		// auth_request takes 2xx, 401 and 403 alone; error_page 401 with
		// auth_request_set can send the browser to Location
		w.Header().Set("Location", h.signInURL(next))
	case browser:
		w.Header().Set("Location", h.signInURL(next))
		web.Write(w, r, http.StatusFound, web.TextPlain, []byte("Found\n"))
		return nil
	}
	w.Header().Set("WWW-Authenticate", h.challenge(r))
	return web.Reject(http.StatusUnauthorized, "sign in required")
}

// noStore is the Cache-Control of the endpoint's answers, shared and
// capped so that an Add copies it.
var noStore = []string{"no-store"}[:1:1]

// ignoredNames remembers which parameter names that are no rules were
// logged, so that each is logged once an hour (a typo such as groups=
// shows in the log, and a client's own parameters cannot flood it): at
// most maxIgnoredNames names an hour, and a count of the others.
type ignoredNames struct {
	mu      sync.Mutex
	seen    map[string]bool
	since   time.Time
	dropped int
}

// maxIgnoredNames bounds how many names are logged an hour: the names of
// a query that reaches the endpoint are the client's to choose.
const maxIgnoredNames = 32

// ignoredWindow is how long a logged name stays quiet.
const ignoredWindow = time.Hour

// warn logs the name at warn unless it was logged within the window or
// maxIgnoredNames names were; a new window first says how many names it
// left out.
func (n *ignoredNames) warn(logger *zap.Logger, now time.Time, name string) {
	n.mu.Lock()
	dropped := 0
	if now.Sub(n.since) >= ignoredWindow {
		dropped, n.dropped, n.seen, n.since = n.dropped, 0, make(map[string]bool), now
	}
	first := !n.seen[name] && len(n.seen) < maxIgnoredNames
	if first {
		n.seen[name] = true
	} else if !n.seen[name] {
		n.dropped++
	}
	n.mu.Unlock()
	if dropped > 0 {
		logger.Warn("more parameters of /miniapp/auth that are no rules were ignored in the last hour than are named in the log", zap.Int("not_named", dropped))
	}
	if first {
		if len(name) > 64 || account.CheckText(name) != nil {
			name = "(a long or unprintable name)"
		}
		logger.Warn("a parameter of /miniapp/auth is no rule and was ignored (rules are group, user and factor)", zap.String("parameter", name))
	}
}
