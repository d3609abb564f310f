package miniapp

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"html/template"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
)

//go:embed templates
var templateFiles embed.FS

var (
	pages = template.Must(template.ParseFS(templateFiles, "templates/*.html"))
	// stylesheet is inlined in every page; the CSP allows it by hash, so
	// the module needs no route of its own for it.
	stylesheet = mustRead("templates/style.css")
)

func mustRead(name string) template.CSS {
	b, err := templateFiles.ReadFile(name)
	if err != nil {
		panic(err)
	}
	return template.CSS(b)
}

// Content types of the module's responses.
const (
	textPlain = "text/plain; charset=utf-8"
	textHTML  = "text/html; charset=utf-8"
	appJSON   = "application/json"
)

// pageCSP allows the pages nothing but their own inlined stylesheet,
// images of the site and forms that post to it.
var pageCSP = "default-src 'none'; style-src 'sha256-" + hashOf(string(stylesheet)) +
	"'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

func hashOf(s string) string {
	sum := sha256.Sum256([]byte(s))
	return base64.StdEncoding.EncodeToString(sum[:])
}

// write sends a whole response with the headers every response of the
// module carries; a HEAD request gets the headers alone. The header
// values share one array, each slice capped so that a later Add copies.
func write(w http.ResponseWriter, r *http.Request, status int, contentType string, body []byte) {
	h := w.Header()
	v := [...]string{contentType, strconv.Itoa(len(body)), "nosniff", "Accept", pageCSP, "same-origin", "DENY"}
	h["Content-Type"] = v[0:1:1]
	h["Content-Length"] = v[1:2:2]
	h["X-Content-Type-Options"] = v[2:3:3]
	// the format of every response follows the Accept header
	if len(h["Vary"]) == 0 {
		h["Vary"] = v[3:4:4]
	} else {
		h["Vary"] = append(h["Vary"], "Accept")
	}
	if contentType == textHTML {
		h["Content-Security-Policy"] = v[4:5:5]
		h["Referrer-Policy"] = v[5:6:6]
		h["X-Frame-Options"] = v[6:7:7]
	}
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

// writeJSON sends v as a JSON response.
func (h *Handler) writeJSON(w http.ResponseWriter, r *http.Request, status int, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return h.internal(w, r, err)
	}
	write(w, r, status, appJSON, body)
	return nil
}

// render sends a page from the embedded templates.
func (h *Handler) render(w http.ResponseWriter, r *http.Request, status int, name string, data pageData) error {
	data.Style = stylesheet
	var buf bytes.Buffer
	if err := pages.ExecuteTemplate(&buf, name, data); err != nil {
		return h.internal(w, r, err)
	}
	write(w, r, status, textHTML, buf.Bytes())
	return nil
}

// pageData is what the page templates show.
type pageData struct {
	Title  string
	Style  template.CSS
	Error  string
	Status string
	Next   string
	User   string
	// the session's times, as datetime attributes and as text
	IssuedISO, IssuedText   string
	ExpiresISO, ExpiresText string
}

// Time layouts of the profile page.
const (
	isoTime  = time.RFC3339
	textTime = "Mon, 02 Jan 2006 15:04 MST"
)

// Page is a template rendered once with markers in place of the values
// and split at them. Joining the parts with a request's escaped values
// gives the same bytes as executing the template, many times faster:
// the profile page is the hottest page of the module.
type Page struct {
	parts  []string
	fields []int // fields[i] is the value that follows parts[i]
}

// pageMarker names field i of a pre-rendered page; it passes through
// html/template's escaping unchanged.
func pageMarker(i int) string { return "miniappfield" + strconv.Itoa(i) + "x" }

// newPage renders the template with marker values, given in the order
// that Fill takes the real ones.
func newPage(name string, data func(markers []string) pageData, fields int) *Page {
	markers := make([]string, fields)
	for i := range markers {
		markers[i] = pageMarker(i)
	}
	d := data(markers)
	d.Style = stylesheet
	var buf bytes.Buffer
	if err := pages.ExecuteTemplate(&buf, name, d); err != nil {
		panic(err)
	}
	page, rest := new(Page), buf.String()
	for {
		at, field := -1, 0
		for i, m := range markers {
			if j := strings.Index(rest, m); j >= 0 && (at < 0 || j < at) {
				at, field = j, i
			}
		}
		if at < 0 {
			page.parts = append(page.parts, rest)
			return page
		}
		page.parts = append(page.parts, rest[:at])
		page.fields = append(page.fields, field)
		rest = rest[at+len(markers[field]):]
	}
}

// Fill joins the page's parts with the values, HTML-escaped.
func (p *Page) Fill(values ...string) []byte {
	n := 0
	for _, part := range p.parts {
		n += len(part)
	}
	body := make([]byte, 0, n+128)
	for i, part := range p.parts {
		body = append(body, part...)
		if i < len(p.fields) {
			body = append(body, template.HTMLEscapeString(values[p.fields[i]])...)
		}
	}
	return body
}

// profilePage is the profile page, its fields the user and the times.
var profilePage = newPage("profile.html", func(m []string) pageData {
	return pageData{Title: "Profile", User: m[0], IssuedISO: m[1], IssuedText: m[2], ExpiresISO: m[3], ExpiresText: m[4]}
}, 5)

// fail answers a request the module refuses. Where the site has
// handle_errors routes the error goes to them, unwrapped so they see the
// status; otherwise the client gets the one-line reason in its format.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) error {
	var br *badRequest
	if !errors.As(err, &br) {
		return h.internal(w, r, err)
	}
	if hasErrorRoutes(r) {
		return caddyhttp.Error(br.status, br)
	}
	switch negotiate(r) {
	case formatJSON:
		return h.writeJSON(w, r, br.status, map[string]string{"error": br.reason})
	case formatHTML:
		return h.render(w, r, br.status, "error.html", pageData{Title: describe(br.status), Status: describe(br.status), Error: br.reason})
	}
	write(w, r, br.status, textPlain, []byte(br.reason+"\n"))
	return nil
}

// internal logs an unexpected failure with its cause and answers 500
// without it.
func (h *Handler) internal(w http.ResponseWriter, r *http.Request, err error) error {
	h.logger.Error("internal error", zap.String("path", r.URL.Path), zap.Error(err))
	if hasErrorRoutes(r) {
		return caddyhttp.Error(http.StatusInternalServerError, errors.New("internal server error"))
	}
	write(w, r, http.StatusInternalServerError, textPlain, []byte("internal server error\n"))
	return nil
}

// hasErrorRoutes reports whether a handle_errors route of the server
// matches the request and will answer an error the handler returns;
// without one Caddy would send the status with an empty body. The
// server's error routes may belong to other sites, hence the match.
func hasErrorRoutes(r *http.Request) bool {
	srv, ok := r.Context().Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server)
	if !ok || srv == nil || srv.Errors == nil {
		return false
	}
	for _, route := range srv.Errors.Routes {
		if match, err := route.MatcherSets.AnyMatchWithError(r); match && err == nil {
			return true
		}
	}
	return false
}
