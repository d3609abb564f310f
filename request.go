package miniapp

import (
	"cmp"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"

	"github.com/caddy-miniapp/miniapp/internal/account"
	"github.com/caddy-miniapp/miniapp/internal/guard"
	"github.com/caddy-miniapp/miniapp/internal/session"
)

// Limits on what the routes read.
const (
	// maxNameLen bounds the name of /hello.
	maxNameLen = 256
	// maxFieldLen bounds the username, password and next fields of /login.
	maxFieldLen = account.MaxNameLen
	// maxParams is Go's own limit on the parameters of a query or form.
	maxParams = 10000
)

// The reasons of a query or form that does not parse.
const (
	reasonManyParams = "too many parameters"
	reasonSemicolon  = "invalid semicolon separator in parameters"
	reasonEscape     = "invalid percent-encoding in parameters"
)

// formValue returns the first non-empty value of key in an urlencoded
// query, checking the whole string as url.ParseQuery would but without
// building a map: url.ParseQuery's map and slices would take /hello from
// 2 to 5 allocations (BenchmarkRoutes/hello).
func formValue(raw, key string) (string, error) {
	var found string
	for n := 0; raw != ""; n++ {
		if n == maxParams {
			return "", reject(http.StatusBadRequest, reasonManyParams)
		}
		var pair string
		pair, raw, _ = strings.Cut(raw, "&")
		if strings.IndexByte(pair, ';') >= 0 {
			return "", reject(http.StatusBadRequest, reasonSemicolon)
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
		return "", reject(http.StatusBadRequest, reasonEscape)
	}
	return u, nil
}

// checkText rejects text that is not valid UTF-8 or holds control
// characters, which would corrupt a page, a header or a log line.
func checkText(s string) error {
	if err := account.CheckText(s); err != nil {
		return reject(http.StatusBadRequest, err.Error())
	}
	return nil
}

// fields are the values a POST body gives, by name.
type fields map[string]string

// readFields reads a POST body of at most limit bytes, an urlencoded
// form or a JSON object, parses it once and returns the first non-empty
// value of each of the names. An empty body without a Content-Type has
// no fields.
func readFields(w http.ResponseWriter, r *http.Request, limit int64, names ...string) (fields, error) {
	ct := r.Header.Get("Content-Type")
	form := mediaTypeIs(ct, "application/x-www-form-urlencoded")
	switch {
	case form, isJSON(ct):
	case ct == "" && r.ContentLength == 0:
		return fields{}, nil
	default:
		return nil, reject(http.StatusUnsupportedMediaType, "content type must be application/x-www-form-urlencoded or application/json")
	}
	if r.ContentLength > limit {
		return nil, reject(http.StatusRequestEntityTooLarge, "request body too large")
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if _, tooLarge := errors.AsType[*http.MaxBytesError](err); tooLarge {
		return nil, reject(http.StatusRequestEntityTooLarge, "request body too large")
	}
	if err != nil {
		return nil, reject(http.StatusBadRequest, "could not read request body")
	}
	if form {
		return formFields(string(body), names)
	}
	return jsonFields(body, names)
}

// formFields parses an urlencoded form body.
func formFields(body string, names []string) (fields, error) {
	if strings.Count(body, "&") >= maxParams {
		return nil, reject(http.StatusBadRequest, reasonManyParams)
	}
	values, err := url.ParseQuery(body)
	if _, badEscape := errors.AsType[url.EscapeError](err); badEscape {
		return nil, reject(http.StatusBadRequest, reasonEscape)
	}
	if err != nil {
		// the only other error url.ParseQuery has under our count
		return nil, reject(http.StatusBadRequest, reasonSemicolon)
	}
	out := make(fields, len(names))
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
func jsonFields(body []byte, names []string) (fields, error) {
	const reason = "body is not a JSON object of string fields"
	var object map[string]any
	if err := json.Unmarshal(body, &object); err != nil {
		return nil, reject(http.StatusBadRequest, reason)
	}
	out := make(fields, len(names))
	for _, name := range names {
		switch v := object[name].(type) {
		case string:
			out[name] = v
		case nil:
		default:
			return nil, reject(http.StatusBadRequest, reason)
		}
	}
	return out, nil
}

// mediaTypeIs reports whether a Content-Type header names mediaType,
// whatever its parameters.
func mediaTypeIs(header, mediaType string) bool {
	mt, _, _ := strings.Cut(header, ";")
	return strings.EqualFold(strings.TrimSpace(mt), mediaType)
}

func isJSON(contentType string) bool {
	return mediaTypeIs(contentType, "application/json")
}

// format is the kind of response a client gets.
type format int

const (
	formatText format = iota
	formatHTML
	formatJSON
)

// negotiate picks JSON or HTML when the Accept header asks for it at
// least as much as for the other; JSON for a client that sent JSON and
// named neither; plain text otherwise.
func negotiate(r *http.Request) format {
	qJSON, qHTML := 0.0, 0.0
	for _, accept := range r.Header.Values("Accept") {
		for accept != "" {
			var part string
			part, accept, _ = strings.Cut(accept, ",")
			mediaType, params, _ := strings.Cut(part, ";")
			q := quality(params)
			switch mediaType = strings.TrimSpace(mediaType); {
			case strings.EqualFold(mediaType, "application/json"):
				qJSON = max(qJSON, q)
			case strings.EqualFold(mediaType, "text/html"):
				qHTML = max(qHTML, q)
			}
		}
	}
	switch {
	case qJSON > 0 && qJSON >= qHTML:
		return formatJSON
	case qHTML > 0:
		return formatHTML
	case isJSON(r.Header.Get("Content-Type")):
		return formatJSON
	}
	return formatText
}

// quality reads the q parameter of a media range; 1 when absent, 0 when
// it does not parse.
func quality(params string) float64 {
	for params != "" {
		var p string
		p, params, _ = strings.Cut(params, ";")
		k, v, _ := strings.Cut(p, "=")
		if strings.TrimSpace(k) == "q" {
			q, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil || q < 0 || q > 1 {
				return 0
			}
			return q
		}
	}
	return 1
}

// safeNext returns next, resolved, when it is a path on this site, and
// "" when it could lead anywhere else: it must start with one "/", not
// "//" or "/\\" (which browsers treat as another host), hold no control
// characters or backslashes, and parse as a bare path and query. Dot
// segments and doubled or percent-encoded slashes are resolved before
// the result is checked and returned, so no Location begins with "//" or
// holds "..".
func safeNext(next string) string {
	if len(next) > maxFieldLen || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") {
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

// loginInput is what a POST /login gives, read once: the fields, the
// client's address and the browser's device cookie for the named user.
type loginInput struct {
	name, password, next string
	// code is a second factor's code or recovery code, or empty.
	code string
	// ip is Caddy's client IP, which honours trusted_proxies.
	ip string
	// device is the browser's device cookie for the user, or nil.
	device *session.Session
	// pending is the pending sign-in that a code alone finishes, with
	// its account; nil for a sign-in with a password.
	pending     *session.Session
	pendingAcct *account.Account
}

// readLogin reads a login: a same-origin POST of username and password
// (and a code, for an account with a second factor), or of a code alone
// with a pending sign-in's cookie.
func (h *Handler) readLogin(w http.ResponseWriter, r *http.Request) (loginInput, error) {
	var in loginInput
	if err := h.sameOrigin(r); err != nil {
		return in, err
	}
	next, err := formValue(r.URL.RawQuery, "next")
	if err != nil {
		return in, err
	}
	body, err := readFields(w, r, h.MaxBodySize, "username", "password", "code", "next")
	if err != nil {
		return in, err
	}
	in.name, in.password, in.code, in.next = body["username"], body["password"], body["code"], h.safeNext(r, cmp.Or(next, body["next"]))
	if err := account.CheckCode(in.code); err != nil {
		return in, reject(http.StatusBadRequest, err.Error())
	}
	in.ip = clientIP(r)
	if in.name == "" && in.password == "" && in.code != "" {
		if in.pending, in.pendingAcct = h.pendingOf(r); in.pending == nil {
			return in, reject(http.StatusUnauthorized, "the sign-in has expired; sign in again")
		}
		in.name = in.pending.User
		in.device = h.knownDevice(r, in.name)
		return in, nil
	}
	if in.name == "" || in.password == "" {
		return in, reject(http.StatusBadRequest, "username and password are required")
	}
	if len(in.name) > maxFieldLen || len(in.password) > maxFieldLen {
		return in, reject(http.StatusBadRequest, "username or password is too long")
	}
	if err := checkText(in.name); err != nil {
		return in, err
	}
	in.device = h.knownDevice(r, in.name)
	return in, nil
}

func (h *Handler) guardLogin(in loginInput) guard.Login {
	login := guard.Login{Client: guard.ClientKey(in.ip)}
	if in.device != nil {
		// the slots serve every realm of the process
		login.Device, login.Account = guard.DeviceKey(in.device.ID), h.Realm+"\x00"+in.name
	}
	return login
}

// requestURL is the absolute URL the client asked for, by its scheme as
// secure tells it and its Host.
func requestURL(r *http.Request) string {
	scheme := "http://"
	if secure(r) {
		scheme = "https://"
	}
	return scheme + r.Host + r.URL.RequestURI()
}
