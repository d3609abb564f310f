package gate

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/caddy-miniapp/miniapp/internal/web"
	"golang.org/x/net/publicsuffix"
)

// Domain is a handler's side of one login for many sites: the domain
// its session cookie is sent to, and where browsers sign in.
type Domain struct {
	// Name is the cookie domain, lowercase; empty without cookie_domain.
	Name string
	// Cookie is the session cookie's one name on the domain, and Secure
	// whether it is Secure: both fixed by login_url's scheme.
	Cookie string
	Secure bool
	// LoginURL is where a browser without a session signs in: login_url,
	// or this site's /login.
	LoginURL string
	// CSP is the pages' Content-Security-Policy, whose form-action lets a
	// form's redirect go on to the domain's sites; empty without a
	// domain.
	CSP string
}

// NewDomain reads cookie_domain and login_url, for the session cookie
// cookie_name.
func NewDomain(cookieDomain, loginURL, cookieName string) (Domain, error) {
	d := Domain{LoginURL: "/login"}
	if loginURL != "" {
		u, err := url.Parse(loginURL)
		absolute := err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "" && u.User == nil
		path := err == nil && u.Scheme == "" && u.Host == "" && strings.HasPrefix(loginURL, "/") && !strings.HasPrefix(loginURL, "//")
		if !absolute && !path || strings.ContainsAny(loginURL, "?#") {
			return d, fmt.Errorf("login_url %q must be an http or https URL, or a path, without query or fragment", loginURL)
		}
		d.LoginURL = loginURL
		d.Secure = u.Scheme == "https"
	}
	if cookieDomain == "" {
		return d, nil
	}
	name := strings.TrimPrefix(strings.ToLower(cookieDomain), ".")
	if err := CheckDomain(name); err != nil {
		return d, fmt.Errorf("cookie_domain %q: %v", cookieDomain, err)
	}
	u, _ := url.Parse(d.LoginURL)
	if u.Host == "" {
		return d, errors.New("cookie_domain needs login_url: the absolute URL of the login site, a host of the domain")
	}
	if !UnderDomain(u.Hostname(), name) {
		return d, fmt.Errorf("login_url %q must be on cookie_domain %q", loginURL, name)
	}
	d.Name = name
	d.Cookie = cookieName
	// any port: a source without one matches the scheme's default alone
	schemes := "http://" + name + ":* http://*." + name + ":* https://" + name + ":* https://*." + name + ":*"
	if d.Secure {
		// __Host- forbids a Domain: __Secure- keeps Secure required
		d.Cookie = "__Secure-" + cookieName
		schemes = "https://" + name + ":* https://*." + name + ":*"
	}
	d.CSP = strings.Replace(web.PageCSP, "form-action 'self'", "form-action 'self' "+schemes, 1)
	return d, nil
}

// CheckDomain refuses a domain that other parties' sites share:
// a public suffix, an IP address, localhost.
func CheckDomain(name string) error {
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

// SafeNext returns next when it is safe to send the browser to after
// signing in: a path on this site (resolved), or with cookie_domain an
// absolute http(s) URL of a host of the domain, https only when this
// page is served over HTTPS. Anything else is "".
func (d Domain) SafeNext(next string, secure bool) string {
	if strings.HasPrefix(next, "/") || d.Name == "" {
		return web.SafePath(next)
	}
	if len(next) > web.MaxNextLen {
		return ""
	}
	for i := 0; i < len(next); i++ {
		if c := next[i]; c <= 0x20 || c == 0x7f || c == '\\' || c >= 0x80 {
			return ""
		}
	}
	u, err := url.Parse(next)
	if err != nil || u.User != nil || u.Opaque != "" || !UnderDomain(u.Hostname(), d.Name) ||
		u.Scheme != "https" && (u.Scheme != "http" || secure) {
		return ""
	}
	return u.String()
}

// SignInURL is the login page with next, for a browser sent to sign in.
func (d Domain) SignInURL(next string) string {
	if next == "" {
		return d.LoginURL
	}
	return d.LoginURL + "?next=" + url.QueryEscape(next)
}

// LoginSite is the login site's origin (scheme and host) when login_url
// is absolute, else empty: this site's paths are the login site's.
func (d Domain) LoginSite() string {
	u, err := url.Parse(d.LoginURL)
	if err != nil || u.Host == "" {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

// Next is where the login page sends a browser back to after signing
// in for a request that /miniapp/auth was asked about: its original URL
// when the session cookie covers it (without a domain, the path alone,
// on host, this site), else /profile.
func (d Domain) Next(original *url.URL, host string) string {
	next := "/profile"
	switch {
	case d.Name != "" && UnderDomain(original.Hostname(), d.Name):
		next = original.String()
	case d.Name == "" && strings.EqualFold(original.Hostname(), host):
		next = original.RequestURI()
	}
	if len(next) > web.MaxFieldLen {
		next = "/profile"
	}
	return next
}

// PolicyFor is the pages' Content-Security-Policy for a page whose
// stylesheet and icon come from site (the login site's origin), or the
// site's own with site empty.
func (d Domain) PolicyFor(site string) string {
	csp := cmp.Or(d.CSP, web.PageCSP)
	if site == "" {
		return csp
	}
	return strings.Replace(strings.Replace(csp, "style-src 'self'", "style-src 'self' "+site, 1), "img-src 'self'", "img-src 'self' "+site, 1)
}
