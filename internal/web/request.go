// Package web reads a request of the module once and writes its answer
// once: the request's facts (format, client, host, security), bounded
// bodies of forms and JSON, safe redirect targets, the answers' headers,
// errors as Caddy's handle_errors sees them or as text, JSON and pages,
// and the pages' templates. It knows HTTP and nothing of sessions,
// accounts or sign-in.
package web

import (
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"path"
	"strings"

	"github.com/caddy-miniapp/miniapp/internal/account"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// Limits on what the routes read.
const (
	// MaxNameLen bounds the name of /hello.
	MaxNameLen = 256
	// MaxFieldLen bounds the username and password fields of /login,
	// and any other text field a route reads but next.
	MaxFieldLen = account.MaxNameLen
	// MaxNextLen bounds next, the URL a browser goes back to after
	// signing in: an OpenID Connect authorization's callback carries its
	// sealed request.
	MaxNextLen = 4096
	// maxParams is Go's own limit on the parameters of a query or form.
	maxParams = 10000
)

// The reasons of a query or form that does not parse.
const (
	reasonManyParams = "too many parameters"
	reasonSemicolon  = "invalid semicolon separator in parameters"
	reasonEscape     = "invalid percent-encoding in parameters"
)

// FormValue returns the first non-empty value of key in an urlencoded
// query, checking the whole string as url.ParseQuery would but without
// building a map: url.ParseQuery's map and slices would take /hello from
// 2 to 5 allocations (BenchmarkRoutes/hello).
func FormValue(raw, key string) (string, error) {
	var found string
	for n := 0; raw != ""; n++ {
		if n == maxParams {
			return "", Reject(http.StatusBadRequest, reasonManyParams)
		}
		var pair string
		pair, raw, _ = strings.Cut(raw, "&")
		if strings.IndexByte(pair, ';') >= 0 {
			return "", Reject(http.StatusBadRequest, reasonSemicolon)
		}
		if pair == "" {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		k, err := unescape(k)
		if err != nil {
			return "", err
		}
		v, err = unescape(v)
		if err != nil {
			return "", err
		}
		if found == "" && k == key {
			found = v
		}
	}
	return found, nil
}

func unescape(s string) (string, error) {
	if !strings.ContainsAny(s, "%+") {
		return s, nil
	}
	u, err := url.QueryUnescape(s)
	if err != nil {
		return "", Reject(http.StatusBadRequest, reasonEscape)
	}
	return u, nil
}

// CheckText rejects text that is not valid UTF-8 or holds control
// characters, which would corrupt a page, a header or a log line.
func CheckText(s string) error {
	if err := account.CheckText(s); err != nil {
		return Reject(http.StatusBadRequest, err.Error())
	}
	return nil
}

// Fields are the values a POST body gives, by name.
type Fields map[string]string

// ReadFields reads a POST body of at most limit bytes, an urlencoded
// form or a JSON object, parses it once and returns the first non-empty
// value of each of the names. An empty body without a Content-Type has
// no fields.
func ReadFields(w http.ResponseWriter, r *http.Request, limit int64, names ...string) (Fields, error) {
	ct := r.Header.Get("Content-Type")
	form := MediaTypeIs(ct, "application/x-www-form-urlencoded")
	switch {
	case form, IsJSON(ct):
	case ct == "" && r.ContentLength == 0:
		return Fields{}, nil
	default:
		return nil, Reject(http.StatusUnsupportedMediaType, "content type must be application/x-www-form-urlencoded or application/json")
	}
	body, err := ReadBody(w, r, limit)
	if err != nil {
		return nil, err
	}
	if form {
		return formFields(string(body), names)
	}
	return jsonFields(body, names)
}

// ReadBody reads a request body of at most limit bytes: a larger one
// is 413 and is never read whole. It is the one reader of the module's
// bodies, forms and JSON alike.
func ReadBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	if err := LimitBody(w, r, limit); err != nil {
		return nil, err
	}
	body, err := io.ReadAll(r.Body)
	if _, tooLarge := errors.AsType[*http.MaxBytesError](err); tooLarge {
		return nil, Reject(http.StatusRequestEntityTooLarge, "request body too large")
	}
	if err != nil {
		return nil, Reject(http.StatusBadRequest, "could not read request body")
	}
	return body, nil
}

// LimitBody bounds the request's body to limit bytes, for a reader
// other than ReadBody: a larger announced one is 413 at once, a longer
// one fails its read.
func LimitBody(w http.ResponseWriter, r *http.Request, limit int64) error {
	if r.ContentLength > limit {
		return Reject(http.StatusRequestEntityTooLarge, "request body too large")
	}
	r.Body = http.MaxBytesReader(w, r.Body, limit)
	return nil
}

// QueryFields reads the first non-empty value of each of the names from
// an urlencoded query, checked as FormValue checks it.
func QueryFields(raw string, names ...string) (Fields, error) { return formFields(raw, names) }

// formFields parses an urlencoded form body.
func formFields(body string, names []string) (Fields, error) {
	if strings.Count(body, "&") >= maxParams {
		return nil, Reject(http.StatusBadRequest, reasonManyParams)
	}
	values, err := url.ParseQuery(body)
	if _, badEscape := errors.AsType[url.EscapeError](err); badEscape {
		return nil, Reject(http.StatusBadRequest, reasonEscape)
	}
	if err != nil {
		// the only other error url.ParseQuery has under our count
		return nil, Reject(http.StatusBadRequest, reasonSemicolon)
	}
	out := make(Fields, len(names))
	for _, name := range names {
		for _, v := range values[name] {
			if v != "" {
				out[name] = v
				break
			}
		}
	}
	return out, nil
}

// jsonFields parses a JSON object whose named members are strings (or
// null); other members may hold anything.
func jsonFields(body []byte, names []string) (Fields, error) {
	const reason = "body is not a JSON object of string fields"
	var object map[string]any
	if err := json.Unmarshal(body, &object); err != nil {
		return nil, Reject(http.StatusBadRequest, reason)
	}
	out := make(Fields, len(names))
	for _, name := range names {
		switch v := object[name].(type) {
		case string:
			out[name] = v
		case nil:
		default:
			return nil, Reject(http.StatusBadRequest, reason)
		}
	}
	return out, nil
}

// MediaTypeIs reports whether a Content-Type header names mediaType,
// whatever its parameters.
func MediaTypeIs(header, mediaType string) bool {
	mt, _, _ := strings.Cut(header, ";")
	return strings.EqualFold(strings.TrimSpace(mt), mediaType)
}

// IsJSON reports whether a Content-Type header names JSON.
func IsJSON(contentType string) bool {
	return MediaTypeIs(contentType, "application/json")
}

// SafePath returns next, resolved, when it is a path on this site, and
// "" when it could lead anywhere else: it must start with one "/", not
// "//" or "/\\" (which browsers treat as another host), hold no control
// characters or backslashes, and parse as a bare path and query. Dot
// segments and doubled or percent-encoded slashes are resolved before
// the result is checked and returned, so no Location begins with "//" or
// holds "..".
func SafePath(next string) string {
	if len(next) > MaxNextLen || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") {
		return ""
	}
	for i := 0; i < len(next); i++ {
		if c := next[i]; c < 0x20 || c == 0x7f || c == '\\' || c >= 0x80 {
			return ""
		}
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" || strings.Contains(u.Path, "\\") {
		return ""
	}
	// a percent-encoded slash at the start decodes to "//"
	if strings.HasPrefix(u.Path, "//") {
		return ""
	}
	resolved := path.Clean(u.Path)
	if strings.HasSuffix(u.Path, "/") && resolved != "/" {
		resolved += "/"
	}
	if !strings.HasPrefix(resolved, "/") || strings.HasPrefix(resolved, "//") {
		return ""
	}
	return (&url.URL{Path: resolved, RawQuery: u.RawQuery, Fragment: u.Fragment}).String()
}

// URL is the absolute URL the client asked for, by its scheme as
// secure tells it and its Host.
func URL(r *http.Request) string {
	scheme := "http://"
	if Secure(r) {
		scheme = "https://"
	}
	return scheme + r.Host + r.URL.RequestURI()
}

// Secure reports whether the client reached the site over HTTPS: the
// connection is TLS, or it comes from one of Caddy's trusted_proxies
// that says so in X-Forwarded-Proto. The header of any other client is
// ignored.
func Secure(r *http.Request) bool {
	if r.TLS != nil {
		return true
	}
	trusted, _ := caddyhttp.GetVar(r.Context(), caddyhttp.TrustedProxyVarKey).(bool)
	if !trusted {
		return false
	}
	proto, _, _ := strings.Cut(r.Header.Get("X-Forwarded-Proto"), ",")
	return strings.EqualFold(strings.TrimSpace(proto), "https")
}

// Host is the host a host-only cookie is bound to, besides its
// name: the request's host without port, as browsers keep cookies, so a
// cookie of one site is no session on another site that shares the key
// set.
func Host(r *http.Request) string {
	host := r.Host
	// only a host with a port is split: SplitHostPort's error for one
	// without would cost an allocation on every request
	if strings.LastIndexByte(host, ':') > strings.LastIndexByte(host, ']') {
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
	}
	return strings.ToLower(host)
}

// ClientIP is Caddy's idea of the client address, which respects
// trusted_proxies.
func ClientIP(r *http.Request) string {
	ip, _ := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string)
	return ip
}

// Allow refuses a method the route does not take with 405 and Allow.
func Allow(w http.ResponseWriter, r *http.Request, allowed string, methods ...string) error {
	for _, m := range methods {
		if r.Method == m {
			return nil
		}
	}
	w.Header().Set("Allow", allowed)
	return Reject(http.StatusMethodNotAllowed, "method not allowed")
}

// Loopback reports whether host is localhost or a loopback address:
// where plain http is allowed for trying things out. Not a name under
// localhost, which a resolver may send over the network.
func Loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
