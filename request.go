package miniapp

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits on what the routes read.
const (
	// maxNameLen bounds the name of /hello.
	maxNameLen = 256
	// maxFieldLen bounds the username, password and next fields of /login.
	maxFieldLen = 1024
	// maxParams is Go's own limit on the parameters of a query or form.
	maxParams = 10000
)

// badRequest is a client error with its status and a one-line reason
// that never repeats the input.
type badRequest struct {
	status int
	reason string
}

func (e *badRequest) Error() string { return e.reason }

func reject(status int, reason string) *badRequest {
	return &badRequest{status: status, reason: reason}
}

// formValue returns the first non-empty value of key in an urlencoded
// query or form, checking the whole string as url.ParseQuery would but
// without building a map.
func formValue(raw, key string) (string, error) {
	var found string
	for n := 0; raw != ""; n++ {
		if n == maxParams {
			return "", reject(http.StatusBadRequest, "too many parameters")
		}
		var pair string
		pair, raw, _ = strings.Cut(raw, "&")
		if strings.IndexByte(pair, ';') >= 0 {
			return "", reject(http.StatusBadRequest, "invalid semicolon separator in parameters")
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
		return "", reject(http.StatusBadRequest, "invalid percent-encoding in parameters")
	}
	return u, nil
}

// checkText rejects text that is not valid UTF-8 or holds control
// characters, which would corrupt a page, a header or a log line.
func checkText(s string) error {
	if !utf8.ValidString(s) {
		return reject(http.StatusBadRequest, "text is not valid UTF-8")
	}
	for _, r := range s {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return reject(http.StatusBadRequest, "text contains control characters")
		}
	}
	return nil
}

// bodyKind is how a POST body is encoded.
type bodyKind int

const (
	bodyNone bodyKind = iota
	bodyForm
	bodyJSON
)

// readBody reads a POST body of at most limit bytes and tells its kind
// from the Content-Type. An empty body without a Content-Type is none.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) (bodyKind, []byte, error) {
	ct := r.Header.Get("Content-Type")
	var kind bodyKind
	switch {
	case mediaTypeIs(ct, "application/x-www-form-urlencoded"):
		kind = bodyForm
	case isJSON(ct):
		kind = bodyJSON
	case ct == "" && r.ContentLength == 0:
		return bodyNone, nil, nil
	default:
		return bodyNone, nil, reject(http.StatusUnsupportedMediaType, "content type must be application/x-www-form-urlencoded or application/json")
	}
	if r.ContentLength > limit {
		return kind, nil, reject(http.StatusRequestEntityTooLarge, "request body too large")
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if _, tooLarge := errors.AsType[*http.MaxBytesError](err); tooLarge {
		return kind, nil, reject(http.StatusRequestEntityTooLarge, "request body too large")
	}
	if err != nil {
		return kind, nil, reject(http.StatusBadRequest, "could not read request body")
	}
	return kind, body, nil
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

// decodeJSON reads a JSON object of string fields into v, refusing
// anything else with a 400.
func decodeJSON(body []byte, v any) error {
	if err := json.Unmarshal(body, v); err != nil {
		return reject(http.StatusBadRequest, "body is not a JSON object of string fields")
	}
	return nil
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

// safeNext returns next when it is a path on this site, and "" when it
// could lead anywhere else: it must start with one "/", not "//" or
// "/\" (which browsers treat as another host), hold no control
// characters or backslashes, and parse as a bare path and query.
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
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" {
		return ""
	}
	// a percent-encoded slash or backslash at the start decodes to "//"
	if p := u.Path; strings.HasPrefix(p, "//") || strings.HasPrefix(p, "/\\") {
		return ""
	}
	return next
}

// describe is a short human description of a status for error pages.
func describe(status int) string {
	return fmt.Sprintf("%d %s", status, http.StatusText(status))
}
