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
	// the recovery codes to show once, and whether the session may only
	// enrol
	Enrolled      bool
	Setup         *setup
	RecoveryCodes []string
	MustEnrol     bool
	// Base is the origin the page's stylesheet, icon and links are on
	// when it is served for another site (the login site's); empty for
	// this site.
	Base string
	// StepUp is the field a change of the sign-in methods asks for (see
	// appendStepUpField), or nothing: in the second factor's form, in a
	// passkey's delete form; PasskeyStepUp in the form that adds one.
	StepUp, PasskeyStepUp template.HTML
}

// StylePath is the stylesheet's path (on Base), for the layout
// template.
func (d pageData) StylePath() string { return d.Base + stylePath }

// ScriptPath is the passkey script's path, for the pages that offer
// passkeys.
func (pageData) ScriptPath() string { return scriptPath }

// FaviconPath is the icon's path (on Base), for the layout template.
func (d pageData) FaviconPath() string { return d.Base + faviconPath }

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
}

// pageMarker names field i of a pre-rendered page; it passes through
// html/template's escaping unchanged.
func pageMarker(i int) string { return "miniappfield" + strconv.Itoa(i) + "x" }

// newPage renders the template with marker values, given in the order
// of the page's field numbers.
func newPage(name string, data func(markers []string) pageData, fields int) *page {
	markers := make([]string, fields)
	for i := range markers {
		markers[i] = pageMarker(i)
	}
	var buf bytes.Buffer
	if err := pages.ExecuteTemplate(&buf, name, data(markers)); err != nil {
		panic(err)
	}
	p, rest := &page{}, buf.String()
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

// appendPage appends the filled page to body: value appends field i's
// value, escaped with appendText unless it is HTML already.
func (p *page) appendPage(body []byte, value func(b []byte, field int) []byte) []byte {
	for i, part := range p.parts {
		body = append(body, part...)
		if i < len(p.fields) {
			body = value(body, p.fields[i])
		}
	}
	return body
}

// appendText appends s escaped as HTML text.
func appendText(b []byte, s string) []byte {
	return append(b, template.HTMLEscapeString(s)...)
}

// The fields of the profile page: the user, the session's times as
// datetime and as text, the list of sessions, the second factor's state
// and the list of passkeys (both lists HTML made of rows).
const (
	profileUser = iota
	profileIssuedISO
	profileIssuedText
	profileExpiresISO
	profileExpiresText
	profileSessions
	profileFactor
	profilePasskeys
	profileStepUp
	profileFields
)

// newProfilePage pre-renders the profile page, with or without its
// passkeys.
func newProfilePage(passkeys bool) *page {
	return newPage("profile.html", func(m []string) pageData {
		return pageData{Title: "Profile", User: m[profileUser], IssuedISO: m[profileIssuedISO], IssuedText: m[profileIssuedText],
			ExpiresISO: m[profileExpiresISO], ExpiresText: m[profileExpiresText], Sessions: template.HTML(m[profileSessions]),
			Status: m[profileFactor], Passkeys: template.HTML(m[profilePasskeys]), Passkey: passkeys, PasskeyStepUp: template.HTML(m[profileStepUp])}
	}, profileFields)
}

// The fields of a row of the profile's lists: what it names (a device, a
// passkey), a detail (the address, when the passkey was last used), a
// time as datetime and as text, the ID its forms send, and a passkey's
// step-up field; the line of sessions not listed has their count as its
// name.
const (
	rowName = iota
	rowDetail
	rowTimeISO
	rowTimeText
	rowID
	rowStepUp
	rowFields
)

// The profile page, with and without passkeys, and the rows of its
// lists: this session, another session with its sign-out form, the count
// of sessions not listed, and a passkey with its forms.
var (
	profilePage           = newProfilePage(true)
	profilePageNoPasskeys = newProfilePage(false)
	thisSessionRow        = newRow("this-session")
	otherSessionRow       = newRow("other-session")
	otherSessionsRow      = newPage("other-sessions", func(m []string) pageData { return pageData{Others: m[rowName]} }, 1)
	passkeyRow            = newRow("passkey")
)

// newRow pre-renders a row of the profile's lists.
func newRow(name string) *page {
	return newPage(name, func(m []string) pageData {
		return pageData{Device: m[rowName], Address: m[rowDetail], IssuedISO: m[rowTimeISO], IssuedText: m[rowTimeText], SessionID: m[rowID],
			StepUp: template.HTML(m[rowStepUp])}
	}, rowFields)
}
