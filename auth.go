package miniapp

import (
	"cmp"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/account"
	"go.uber.org/zap"
)

// authPath is the endpoint that other sites, in this Caddy or another
// server, ask through forward_auth (or nginx's auth_request) whether a
// request's session is valid.
const authPath = "/miniapp/auth"

// auth answers whether the request that forward_auth or auth_request
// forwards carries a valid session for the site it was sent to: 200
// with Remote-* headers, 403 when a rule of the query refuses the user,
// and without a session a redirect to the login page for a browser or
// 401 for any other client (401 with the login page in Location for
// nginx, which takes no redirect from it).
func (h *Handler) auth(w http.ResponseWriter, r *http.Request, _ format, sess *signedIn) error {
	if err := allow(w, r, "GET, HEAD", http.MethodGet, http.MethodHead); err != nil {
		return err
	}
	rules, err := parseRules(r.URL.RawQuery)
	if err != nil {
		return err
	}
	for _, name := range rules.ignored {
		h.ignoredRules.warn(h.logger, name)
	}
	w.Header()["Cache-Control"] = noStore
	if sess == nil || !h.covers(r, originalHost(r)) {
		original, nginx := originalURL(r)
		return h.authSignIn(w, r, original, nginx)
	}
	if h.mustEnrol(sess) {
		original, nginx := originalURL(r)
		switch {
		case h.hasFactor(sess.acct):
			// a session from before the factor: sign in again with it
			return h.authSignIn(w, r, original, nginx)
		case !acceptsHTML(r):
			return reject(http.StatusForbidden, "second factor enrollment required")
		}
		// to the setup, never back to the login page, which would loop
		w.Header().Set("Location", h.loginSite()+totpPath)
		if nginx {
			// auth_request takes 2xx, 401 and 403 alone
			return reject(http.StatusUnauthorized, "second factor enrollment required")
		}
		write(w, r, http.StatusFound, textPlain, []byte("Found\n"))
		return nil
	}
	if rules.factors > sess.Factors {
		if acceptsHTML(r) && h.hasFactor(sess.acct) {
			original, nginx := originalURL(r)
			return h.authSignIn(w, r, original, nginx)
		}
		return reject(http.StatusForbidden, "this site requires a second factor")
	}
	if !rules.allow(sess.acct) {
		return h.notAllowed(w, r, sess)
	}
	h.keepAlive(r, sess)
	header := w.Header()
	setRemote(header, "Remote-User", sess.acct.Name)
	setRemote(header, "Remote-Groups", sess.acct.GroupList)
	setRemote(header, "Remote-Email", sess.acct.Email)
	setRemote(header, "Remote-Name", sess.acct.FullName)
	w.WriteHeader(http.StatusOK)
	return nil
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
func (h *Handler) authNext(r *http.Request, original *url.URL) string {
	next := "/profile"
	if host := original.Hostname(); h.covers(r, host) {
		next = original.String()
		if h.domain.name == "" {
			next = original.RequestURI() // the login page takes paths alone then
		}
	}
	if len(next) > maxFieldLen {
		next = "/profile"
	}
	return next
}

// notAllowed answers a signed-in user whom a site's rules refuse: 403.
// A browser gets a page whose stylesheet, icon and links come from the
// login site (the site asked about would answer 403 again), offering to
// sign in as someone else: sign out on the login site, then its login
// page with next.
func (h *Handler) notAllowed(w http.ResponseWriter, r *http.Request, sess *signedIn) error {
	const reason = "this user may not use this site"
	if !acceptsHTML(r) || hasErrorRoutes(r) {
		return reject(http.StatusForbidden, reason)
	}
	original, _ := originalURL(r)
	site := h.loginSite()
	again := site + "/logout?next=" + url.QueryEscape(h.signInURL(h.authNext(r, original)))
	csp := cmp.Or(h.domain.csp, pageCSP)
	if site != "" {
		csp = strings.Replace(strings.Replace(csp, "style-src 'self'", "style-src 'self' "+site, 1), "img-src 'self'", "img-src 'self' "+site, 1)
	}
	w.Header().Set("Content-Security-Policy", csp)
	title := describe(http.StatusForbidden)
	return h.render(w, r, http.StatusForbidden, "forbidden.html", pageData{Title: title, Status: title, User: sess.User, Base: site, Next: again})
}

// authSignIn answers a forwarded request without a valid session.
func (h *Handler) authSignIn(w http.ResponseWriter, r *http.Request, original *url.URL, nginx bool) error {
	next := h.authNext(r, original)
	browser := acceptsHTML(r)
	switch {
	case nginx && browser:
		// auth_request takes 2xx, 401 and 403 alone; error_page 401 with
		// auth_request_set can send the browser to Location
		w.Header().Set("Location", h.signInURL(next))
	case browser:
		w.Header().Set("Location", h.signInURL(next))
		write(w, r, http.StatusFound, textPlain, []byte("Found\n"))
		return nil
	}
	w.Header().Set("WWW-Authenticate", h.challenge(r))
	return reject(http.StatusUnauthorized, "sign in required")
}

// acceptsHTML reports whether the client takes HTML: its Accept header
// names text/html with a quality above 0. Only Accept says so, never the
// User-Agent.
func acceptsHTML(r *http.Request) bool {
	for _, accept := range r.Header.Values("Accept") {
		for accept != "" {
			var part string
			part, accept, _ = strings.Cut(accept, ",")
			mediaType, params, _ := strings.Cut(part, ";")
			if strings.EqualFold(strings.TrimSpace(mediaType), "text/html") && quality(params) > 0 {
				return true
			}
		}
	}
	return false
}

// keepAlive records the session's use when its idle window is half
// gone: a 2xx answer's headers never reach the browser through
// forward_auth or auth_request, so the cookie cannot be renewed, and
// every session check honours the last use instead. It is at most one
// store write per session per half idle window.
func (h *Handler) keepAlive(r *http.Request, sess *signedIn) {
	h.shared.KeepAlive(r.Context(), sess.ID, sess.Expires, sess.LastSeen, h.clock.Now().Truncate(time.Second), time.Duration(h.IdleTimeout)/2)
}

// noStore is the Cache-Control of the endpoint's answers, shared and
// capped so that an Add copies it.
var noStore = []string{"no-store"}[:1:1]

// originalHost is the host of the request that was forwarded for a
// check, without its port: originalURL's, read without building the URL
// on forward_auth's path (X-Forwarded-Host). A request whose
// X-Original-URL is no URL has none.
func originalHost(r *http.Request) string {
	host := r.Host
	if raw := r.Header.Get("X-Original-URL"); raw != "" {
		u, ok := parseOriginal(raw)
		if !ok {
			return ""
		}
		return u.Hostname()
	}
	if fwd, _, _ := strings.Cut(r.Header.Get("X-Forwarded-Host"), ","); validHost(fwd) {
		host = fwd
	}
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return host
}

// originalURL is the URL of the request that was forwarded for a check:
// from X-Forwarded-Proto, -Host and -Uri (Caddy's forward_auth,
// Traefik), or X-Original-URL (nginx, which then reports true whether or
// not it is a URL), else the request itself. Headers that do not make a
// URL are left out.
func originalURL(r *http.Request) (*url.URL, bool) {
	if raw := r.Header.Get("X-Original-URL"); raw != "" {
		u, ok := parseOriginal(raw)
		if !ok {
			u = &url.URL{Scheme: "http", Host: r.Host, Path: "/"}
		}
		return u, true
	}
	u := &url.URL{Scheme: "http", Host: r.Host, Path: "/"}
	if secure(r) {
		u.Scheme = "https"
	}
	if proto, _, _ := strings.Cut(r.Header.Get("X-Forwarded-Proto"), ","); proto == "http" || proto == "https" {
		u.Scheme = proto
	}
	if host, _, _ := strings.Cut(r.Header.Get("X-Forwarded-Host"), ","); validHost(host) {
		u.Host = host
	}
	if uri := r.Header.Get("X-Forwarded-Uri"); strings.HasPrefix(uri, "/") && !strings.HasPrefix(uri, "//") {
		if ref, err := url.ParseRequestURI(uri); err == nil {
			u.Path, u.RawPath, u.RawQuery = ref.Path, ref.RawPath, ref.RawQuery
		}
	}
	return u, false
}

// parseOriginal reads X-Original-URL: an absolute http(s) URL with a
// host and no user information.
func parseOriginal(raw string) (*url.URL, bool) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || !validHost(u.Host) {
		return nil, false
	}
	return u, true
}

// hostByte marks the bytes a host with its port may hold.
var hostByte = func() (t [256]bool) {
	for _, c := range "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-:[]" {
		t[c] = true
	}
	return t
}()

// validHost reports whether s is a host, with an optional port, and
// nothing else: letters, digits, '.', '-', ':' and the brackets of an
// IPv6 address.
func validHost(s string) bool {
	if s == "" || len(s) > 255 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !hostByte[c] {
			return false
		}
	}
	return true
}

// rules are the conditions of one site's check, read from the endpoint's
// own query alone: every group= parameter names groups of which the user
// must be in at least one, every user= parameter users of which the user
// must be one, and factor=2 asks for a session that began with a second
// factor. Every rule applies (AND), so a parameter a client adds can only
// tighten the check; parameters that are not rules are ignored.
type rules struct {
	groups, users [][]string
	factors       uint8
	// ignored are the names of parameters that are not rules, for the log
	ignored []string
}

// parseRules reads group=a,b and user=ada,bob, each repeatable, and
// factor=2; names and values are percent-decoded first.
func parseRules(query string) (rules, error) {
	var out rules
	for query != "" {
		var pair string
		pair, query, _ = strings.Cut(query, "&")
		if pair == "" {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		k, err := unescape(k)
		if err != nil {
			return out, err
		}
		if v, err = unescape(v); err != nil {
			return out, err
		}
		switch k {
		case "factor":
			if v != "2" {
				return out, reject(http.StatusBadRequest, "factor must be 2")
			}
			out.factors = 2
		case "group", "user":
			names := strings.Split(v, ",")
			for _, n := range names {
				if n == "" || account.CheckName(n) != nil {
					return out, reject(http.StatusBadRequest, "a rule names an empty or invalid group or user")
				}
			}
			if k == "group" {
				out.groups = append(out.groups, names)
			} else {
				out.users = append(out.users, names)
			}
		default:
			out.ignored = append(out.ignored, k)
		}
	}
	return out, nil
}

// ignoredNames remembers which parameter names that are no rules were
// logged, so that each is logged once (a typo such as groups= shows in
// the log, and a client's own parameters cannot flood it).
type ignoredNames struct {
	mu   sync.Mutex
	seen map[string]bool
}

// maxIgnoredNames bounds how many names are remembered and logged: the
// names of a query that reaches the endpoint are the client's to choose.
const maxIgnoredNames = 32

// warn logs the name once, at warn, unless it was logged before or
// maxIgnoredNames were.
func (n *ignoredNames) warn(logger *zap.Logger, name string) {
	n.mu.Lock()
	first := !n.seen[name] && len(n.seen) < maxIgnoredNames
	if first {
		if n.seen == nil {
			n.seen = make(map[string]bool)
		}
		n.seen[name] = true
	}
	n.mu.Unlock()
	if first {
		if len(name) > 64 || account.CheckText(name) != nil {
			name = "(a long or unprintable name)"
		}
		logger.Warn("a parameter of /miniapp/auth is no rule and was ignored (rules are group, user and factor)", zap.String("parameter", name))
	}
}

// allow reports whether the account meets every rule.
func (rs rules) allow(a *account.Account) bool {
	for _, oneOf := range rs.groups {
		if !slices.ContainsFunc(oneOf, a.HasGroup) {
			return false
		}
	}
	for _, oneOf := range rs.users {
		if !slices.Contains(oneOf, a.Name) {
			return false
		}
	}
	return true
}
