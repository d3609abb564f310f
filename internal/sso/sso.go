// Package sso decides the checks of /miniapp/auth, which Caddy's
// forward_auth, nginx's auth_request and Traefik's forwardAuth ask
// whether a forwarded request may pass: the original URL from the
// forwarding headers, the site's rules from the endpoint's own query
// (never from anything the client sent along), and the decision as a
// value. It knows nothing of HTTP handlers, cookies, sessions or the
// store: the route reads the request once into a Check and writes what
// Decide returns.
package sso

import (
	"net"
	"net/url"
	"strings"
)

// Check is a forwarded request as the route reads it.
type Check struct {
	// Query is the endpoint's own raw query: the site's rules.
	Query string
	// Host is the request's Host, and Secure whether it came over HTTPS
	// (or from a trusted proxy that says so).
	Host   string
	Secure bool
	// The forwarding headers: X-Forwarded-Proto, -Host and -Uri (Caddy's
	// forward_auth, Traefik), and X-Original-URL (nginx).
	ForwardedProto, ForwardedHost, ForwardedURI, OriginalURL string
}

// Original is the URL of the request that was forwarded for the check:
// from X-Original-URL (nginx, which then reports true whether or not it
// is a URL), else from X-Forwarded-Proto, -Host and -Uri, else the
// request itself. Headers that do not make a URL are left out.
func (c Check) Original() (*url.URL, bool) {
	if c.OriginalURL != "" {
		u, ok := parseOriginal(c.OriginalURL)
		if !ok {
			u = &url.URL{Scheme: "http", Host: c.Host, Path: "/"}
		}
		return u, true
	}
	u := &url.URL{Scheme: "http", Host: c.Host, Path: "/"}
	if c.Secure {
		u.Scheme = "https"
	}
	if proto, _, _ := strings.Cut(c.ForwardedProto, ","); proto == "http" || proto == "https" {
		u.Scheme = proto
	}
	if host, _, _ := strings.Cut(c.ForwardedHost, ","); ValidHost(host) {
		u.Host = host
	}
	if uri := c.ForwardedURI; strings.HasPrefix(uri, "/") && !strings.HasPrefix(uri, "//") {
		if ref, err := url.ParseRequestURI(uri); err == nil {
			u.Path, u.RawPath, u.RawQuery = ref.Path, ref.RawPath, ref.RawQuery
		}
	}
	return u, false
}

// OriginalHost is the host of the forwarded request, without its port:
// Original's, read without building the URL on forward_auth's path. A
// request whose X-Original-URL is no URL has none.
func (c Check) OriginalHost() string {
	host := c.Host
	if c.OriginalURL != "" {
		u, ok := parseOriginal(c.OriginalURL)
		if !ok {
			return ""
		}
		return u.Hostname()
	}
	if fwd, _, _ := strings.Cut(c.ForwardedHost, ","); ValidHost(fwd) {
		host = fwd
	}
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return host
}

// parseOriginal reads X-Original-URL: an absolute http(s) URL with a
// host and no user information.
func parseOriginal(raw string) (*url.URL, bool) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || !ValidHost(u.Host) {
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

// ValidHost reports whether s is a host, with an optional port, and
// nothing else: letters, digits, '.', '-', ':' and the brackets of an
// IPv6 address.
func ValidHost(s string) bool {
	if s == "" || len(s) > 255 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !hostByte[s[i]] {
			return false
		}
	}
	return true
}
