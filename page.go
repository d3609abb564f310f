package miniapp

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"html/template"
	"net/http"
	"strconv"
	"strings"
	"time"
)

//go:embed templates
var templateFiles embed.FS

var (
	pages = template.Must(template.ParseFS(templateFiles, "templates/*.html"))
	// stylesheet is the pages' one stylesheet, served at stylePath.
	stylesheet = mustRead("templates/style.css")
	// stylePath names the stylesheet by its content, so that browsers
	// may keep it for a year: a changed stylesheet gets a new path.
	stylePath = "/miniapp/style." + contentHash(stylesheet) + ".css"
	// passkeyScript is the pages' one script (passkeys), served at
	// scriptPath, named by its content likewise.
	passkeyScript = mustRead("templates/passkey.js")
	scriptPath    = "/miniapp/passkey." + contentHash(passkeyScript) + ".js"
	// favicon is the pages' icon, served at faviconPath likewise, so
	// that browsers stop asking for /favicon.ico.
	favicon     = mustRead("templates/favicon.svg")
	faviconPath = "/miniapp/favicon." + contentHash(favicon) + ".svg"
)

// assetPaths are the paths of the pages' static files.
var assetPaths = map[string]bool{stylePath: true, scriptPath: true, faviconPath: true}

// mustRead returns an embedded file.
func mustRead(name string) []byte {
	b, err := templateFiles.ReadFile(name)
	if err != nil {
		panic(err)
	}
	return b
}

// contentHash is a short hex digest of b, for content-addressed paths.
func contentHash(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// asset is the route of a static file of the pages, named by its
// content and so cacheable by anyone for a year.
func asset(contentType string, body []byte) route {
	return func(_ *Handler, w http.ResponseWriter, r *http.Request, _ format, _ *signedIn) error {
		if err := allow(w, r, "GET, HEAD", http.MethodGet, http.MethodHead); err != nil {
			return err
		}
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		write(w, r, http.StatusOK, contentType, body)
		return nil
	}
}

// pageData is what the page templates show.
type pageData struct {
	Title  string
	Error  string
	Status string
	Next   string
	User   string
	// the session's times, as datetime attributes and as text
	IssuedISO, IssuedText   string
	ExpiresISO, ExpiresText string
	// Sessions is the profile's list of the account's sessions, made of
	// the session rows; Passkeys its list of passkeys, made of passkey
	// rows.
	Sessions template.HTML
	Passkeys template.HTML
	// Passkey is whether the page offers passkeys.
	Passkey bool
	// a session row: the device name, the address, the session ID, and
	// how many sessions are not listed (on the second factor's page, how
	// many recovery codes are left)
	Device, Address, SessionID, Others string
	// CodeStep is the login page's code form of a pending sign-in.
	CodeStep bool
	// the second factor's page: whether the user has one, a new setup,
	// the recovery codes to show once, whether the password is needed
	// for a change, and whether the session may only enrol
	Enrolled      bool
	Setup         *setup
	RecoveryCodes []string
	NeedPassword  bool
	MustEnrol     bool
}

// StylePath is the stylesheet's path, for the layout template.
func (pageData) StylePath() string { return stylePath }

// ScriptPath is the passkey script's path, for the pages that offer
// passkeys.
func (pageData) ScriptPath() string { return scriptPath }

// FaviconPath is the icon's path, for the layout template.
func (pageData) FaviconPath() string { return faviconPath }

// Time layouts of the profile page.
const (
	isoTime  = time.RFC3339
	textTime = "Mon, 02 Jan 2006 15:04 MST"
)

// render sends a page from the embedded templates.
func (h *Handler) render(w http.ResponseWriter, r *http.Request, status int, name string, data pageData) error {
	var buf bytes.Buffer
	if err := pages.ExecuteTemplate(&buf, name, data); err != nil {
		return h.internal(w, r, err)
	}
	if h.domain.csp != "" && w.Header().Get("Content-Security-Policy") == "" {
		w.Header().Set("Content-Security-Policy", h.domain.csp)
	}
	write(w, r, status, textHTML, buf.Bytes())
	return nil
}

// page is a template rendered once with markers in place of the values
// and split at them. Joining the parts with a request's escaped values
// gives the same bytes as executing the template, many times faster:
// the profile page is the hottest page of the module.
type page struct {
	parts  []string
	fields []int // fields[i] is the value that follows parts[i]
	// raw holds the fields that are HTML already (made of other pages)
	raw map[int]bool
}

// pageMarker names field i of a pre-rendered page; it passes through
// html/template's escaping unchanged.
func pageMarker(i int) string { return "miniappfield" + strconv.Itoa(i) + "x" }

// newPage renders the template with marker values, given in the order
// that fill takes the real ones; the raw fields are HTML.
func newPage(name string, data func(markers []string) pageData, fields int, raw ...int) *page {
	markers := make([]string, fields)
	for i := range markers {
		markers[i] = pageMarker(i)
	}
	var buf bytes.Buffer
	if err := pages.ExecuteTemplate(&buf, name, data(markers)); err != nil {
		panic(err)
	}
	p, rest := &page{raw: make(map[int]bool)}, buf.String()
	for _, f := range raw {
		p.raw[f] = true
	}
	for {
		at, field := -1, 0
		for i, m := range markers {
			if j := strings.Index(rest, m); j >= 0 && (at < 0 || j < at) {
				at, field = j, i
			}
		}
		if at < 0 {
			p.parts = append(p.parts, rest)
			return p
		}
		p.parts = append(p.parts, rest[:at])
		p.fields = append(p.fields, field)
		rest = rest[at+len(markers[field]):]
	}
}

// fill joins the page's parts with the values, HTML-escaped.
func (p *page) fill(values ...string) []byte {
	n := 128
	for _, part := range p.parts {
		n += len(part)
	}
	for f := range p.raw {
		n += len(values[f])
	}
	return p.appendFill(make([]byte, 0, n), values...)
}

// appendFill appends the filled page to body.
func (p *page) appendFill(body []byte, values ...string) []byte {
	for i, part := range p.parts {
		body = append(body, part...)
		switch {
		case i == len(p.fields):
		case p.raw[p.fields[i]]:
			body = append(body, values[p.fields[i]]...)
		default:
			body = append(body, template.HTMLEscapeString(values[p.fields[i]])...)
		}
	}
	return body
}

// newProfilePage pre-renders the profile page, with or without its
// passkeys.
func newProfilePage(passkeys bool) *page {
	return newPage("profile.html", func(m []string) pageData {
		return pageData{Title: "Profile", User: m[0], IssuedISO: m[1], IssuedText: m[2], ExpiresISO: m[3], ExpiresText: m[4], Sessions: template.HTML(m[5]), Status: m[6],
			Passkeys: template.HTML(m[7]), Passkey: passkeys}
	}, 8, 5, 7)
}

// The profile page, its fields the user, the times, the list of sessions
// the second factor's state and the passkeys, and the rows of that list: this session, another session
// with its sign-out form, and the count of sessions not listed.
var (
	profilePage           = newProfilePage(true)
	profilePageNoPasskeys = newProfilePage(false)
	thisSessionRow        = newPage("this-session", func(m []string) pageData {
		return pageData{Device: m[0], Address: m[1], IssuedISO: m[2], IssuedText: m[3]}
	}, 4)
	otherSessionRow = newPage("other-session", func(m []string) pageData {
		return pageData{Device: m[0], Address: m[1], IssuedISO: m[2], IssuedText: m[3], SessionID: m[4]}
	}, 5)
	otherSessionsRow = newPage("other-sessions", func(m []string) pageData {
		return pageData{Others: m[0]}
	}, 1)
	passkeyRow = newPage("passkey", func(m []string) pageData {
		return pageData{Device: m[0], Address: m[1], IssuedISO: m[2], IssuedText: m[3], SessionID: m[4]}
	}, 5)
)
