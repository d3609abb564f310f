package miniapp

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/caddy-miniapp/miniapp/internal/gate"

	"github.com/caddy-miniapp/miniapp/internal/web"
	"golang.org/x/net/publicsuffix"
)

// cookieDomain is the handler's side of one login for many sites: the
// domain its session cookie is sent to, and where browsers sign in.
type cookieDomain struct {
	// name is the cookie domain, lowercase; empty without cookie_domain.
	name string
	// cookie is the session cookie's one name on the domain, and secure
	// whether it is Secure: both fixed by login_url's scheme.
	cookie string
	secure bool
	// loginURL is where a browser without a session signs in: login_url,
	// or this site's /login.
	loginURL string
	// csp is the pages' Content-Security-Policy, whose form-action lets a
	// form's redirect go on to the domain's sites.
	csp string
}

// setDomain reads cookie_domain and login_url.
func (h *Handler) setDomain() error {
	h.domain = cookieDomain{loginURL: "/login"}
	if h.LoginURL != "" {
		u, err := url.Parse(h.LoginURL)
		absolute := err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "" && u.User == nil
		path := err == nil && u.Scheme == "" && u.Host == "" && strings.HasPrefix(h.LoginURL, "/") && !strings.HasPrefix(h.LoginURL, "//")
		if !absolute && !path || strings.ContainsAny(h.LoginURL, "?#") {
			return fmt.Errorf("login_url %q must be an http or https URL, or a path, without query or fragment", h.LoginURL)
		}
		h.domain.loginURL = h.LoginURL
		h.domain.secure = u.Scheme == "https"
	}
	if h.CookieDomain == "" {
		return nil
	}
	name := strings.TrimPrefix(strings.ToLower(h.CookieDomain), ".")
	if err := checkCookieDomain(name); err != nil {
		return fmt.Errorf("cookie_domain %q: %v", h.CookieDomain, err)
	}
	u, _ := url.Parse(h.domain.loginURL)
	if u.Host == "" {
		return errors.New("cookie_domain needs login_url: the absolute URL of the login site, a host of the domain")
	}
	if !gate.UnderDomain(u.Hostname(), name) {
		return fmt.Errorf("login_url %q must be on cookie_domain %q", h.LoginURL, name)
	}
	h.domain.name = name
	h.domain.cookie = h.CookieName
	// any port: a source without one matches the scheme's default alone
	schemes := "http://" + name + ":* http://*." + name + ":* https://" + name + ":* https://*." + name + ":*"
	if h.domain.secure {
		// __Host- forbids a Domain: __Secure- keeps Secure required
		h.domain.cookie = "__Secure-" + h.CookieName
		schemes = "https://" + name + ":* https://*." + name + ":*"
	}
	h.domain.csp = strings.Replace(web.PageCSP, "form-action 'self'", "form-action 'self' "+schemes, 1)
	return nil
}

// checkCookieDomain refuses a domain that other parties' sites share:
// a public suffix, an IP address, localhost.
func checkCookieDomain(name string) error {
	if net.ParseIP(strings.Trim(name, "[]")) != nil || endsInNumber(name) {
		return errors.New("an IP address cannot have subdomains")
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" || len(label) > 63 || strings.Trim(label, "abcdefghijklmnopqrstuvwxyz0123456789-") != "" {
			return errors.New("not a domain name: labels of letters, digits and '-', without a port or a final dot")
		}
	}
	if name == "localhost" {
		return errors.New("localhost is every machine's own name; give a domain of your own")
	}
	if suffix, _ := publicsuffix.PublicSuffix(name); suffix == name {
		return errors.New("a public suffix: sites of other owners under it would receive the cookie")
	}
	return nil
}

// endsInNumber reports whether a browser reads the host as an IPv4
// address (the URL standard's "ends in a number"): its last label, after
// a final dot, is decimal digits or 0x and hex digits, as in 127.1,
// 0x7f.0.0.1 or 2130706433, which net.ParseIP does not take.
func endsInNumber(host string) bool {
	host = strings.TrimSuffix(host, ".")
	last := host[strings.LastIndexByte(host, '.')+1:]
	if hex, ok := strings.CutPrefix(strings.ToLower(last), "0x"); ok {
		return strings.Trim(hex, "0123456789abcdef") == ""
	}
	return last != "" && strings.Trim(last, "0123456789") == ""
}

// safeNext returns next when it is safe to send the browser to after
// signing in: a path on this site (resolved), or with cookie_domain an
// absolute http(s) URL of a host of the domain, https only when this
// page is served over HTTPS. Anything else is "".
func (h *Handler) safeNext(r *http.Request, next string) string {
	if strings.HasPrefix(next, "/") || h.domain.name == "" {
		return web.SafePath(next)
	}
	if len(next) > web.MaxFieldLen {
		return ""
	}
	for i := 0; i < len(next); i++ {
		if c := next[i]; c <= 0x20 || c == 0x7f || c == '\\' || c >= 0x80 {
			return ""
		}
	}
	u, err := url.Parse(next)
	if err != nil || u.User != nil || u.Opaque != "" || !gate.UnderDomain(u.Hostname(), h.domain.name) ||
		u.Scheme != "https" && (u.Scheme != "http" || web.Secure(r)) {
		return ""
	}
	return u.String()
}

// signInURL is the login page with next, for a browser sent to sign in.
func (h *Handler) signInURL(next string) string {
	if next == "" {
		return h.domain.loginURL
	}
	return h.domain.loginURL + "?next=" + url.QueryEscape(next)
}

// loginSite is the login site's origin (scheme and host) when login_url
// is absolute, else empty: this site's paths are the login site's.
func (h *Handler) loginSite() string {
	u, err := url.Parse(h.domain.loginURL)
	if err != nil || u.Host == "" {
		return ""
	}
	return u.Scheme + "://" + u.Host
}
