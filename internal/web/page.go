package web

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
	// Stylesheet is the pages' one stylesheet, served at StylePath.
	Stylesheet = mustRead("templates/style.css")
	// StylePath names the stylesheet by its content, so that browsers
	// may keep it for a year: a changed stylesheet gets a new path.
	StylePath = "/miniapp/style." + contentHash(Stylesheet) + ".css"
	// PasskeyScript is the pages' one script (passkeys), served at
	// ScriptPath, named by its content likewise.
	PasskeyScript = mustRead("templates/passkey.js")
	ScriptPath    = "/miniapp/passkey." + contentHash(PasskeyScript) + ".js"
	// InviteScript moves an invite link's token into its form, served at
	// InviteScriptPath likewise.
	InviteScript     = mustRead("templates/invite.js")
	InviteScriptPath = "/miniapp/invite." + contentHash(InviteScript) + ".js"
	// Favicon is the pages' icon, served at FaviconPath likewise, so
	// that browsers stop asking for /favicon.ico.
	Favicon     = mustRead("templates/favicon.svg")
	FaviconPath = "/miniapp/favicon." + contentHash(Favicon) + ".svg"
)

// StablePath serves the stylesheet under a name that does not change,
// for a site's own pages (such as the example's public/index.html),
// which cannot know the hashed name: cached for five minutes.
const StablePath = "/miniapp/style.css"

// AssetPaths are the paths of the pages' static files.
var AssetPaths = map[string]bool{StylePath: true, ScriptPath: true, FaviconPath: true, StablePath: true, InviteScriptPath: true}

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

// ServeAsset answers a static file of the pages, named by its content
// and so cacheable by anyone for a year (the stylesheet at StablePath
// for five minutes).
func ServeAsset(w http.ResponseWriter, r *http.Request, contentType string, body []byte) error {
	if err := Allow(w, r, "GET, HEAD", http.MethodGet, http.MethodHead); err != nil {
		return err
	}
	cache := "public, max-age=31536000, immutable"
	if r.URL.Path == StablePath {
		cache = "public, max-age=300"
	}
	w.Header().Set("Cache-Control", cache)
	Write(w, r, http.StatusOK, contentType, body)
	return nil
}

// PageData is what the page templates show.
type PageData struct {
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
	// Apps is the profile's list of the apps holding a refresh token of
	// the user, made of app rows, with its heading; empty for none.
	// Links is its list of the user's accounts at providers, likewise.
	Apps, Links template.HTML
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
	Setup         *Setup
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
	// Providers are the login page's buttons of the providers to sign
	// in with.
	Providers []ProviderLink
	// MinLength is the shortest new password the invite and password
	// pages take; Token is the invite page's token, kept when its
	// password was refused.
	MinLength int
	Token     string
	// TrustFor is how long the code step's "trust this browser" lasts
	// (remember_second_factor, as text: "30 days"); empty for none.
	TrustFor string
}

// ProviderLink is a login page's button of a provider: "Sign in with
// <Label>", starting at Href.
type ProviderLink struct {
	Label, Href string
}

// StylePath is the stylesheet's path (on Base), for the layout
// template.
func (d PageData) StylePath() string { return d.Base + StylePath }

// ScriptPath is the passkey script's path, for the pages that offer
// passkeys.
func (PageData) ScriptPath() string { return ScriptPath }

// InviteScriptPath is the invite page's script's path.
func (PageData) InviteScriptPath() string { return InviteScriptPath }

// FaviconPath is the icon's path (on Base), for the layout template.
func (d PageData) FaviconPath() string { return d.Base + FaviconPath }

// Setup is a new one-time-code secret as the second factor's page shows
// it.
type Setup struct {
	// Secret is the key in base32, URI its otpauth:// URI, Enrollment
	// the sealed setup the form sends back.
	Secret, URI, Enrollment string
	// QR is the URI's QR code as a data: URL of a PNG made here.
	QR template.URL
}

// Groups is the key in groups of four, as the page shows it: easier
// to type, and copied whole.
func (s *Setup) Groups() []string {
	var groups []string
	for key := s.Secret; key != ""; {
		n := min(4, len(key))
		groups, key = append(groups, key[:n]), key[n:]
	}
	return groups
}

// Time layouts of the profile page.
const (
	ISOTime  = time.RFC3339
	TextTime = "Mon, 02 Jan 2006 15:04 MST"
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

// NewPage renders the template with marker values, given in the order
// of the page's field numbers.
func NewPage(name string, data func(markers []string) PageData, fields int) *Page {
	markers := make([]string, fields)
	for i := range markers {
		markers[i] = pageMarker(i)
	}
	var buf bytes.Buffer
	if err := pages.ExecuteTemplate(&buf, name, data(markers)); err != nil {
		panic(err)
	}
	p, rest := &Page{}, buf.String()
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

// AppendPage appends the filled page to body: value appends field i's
// value, escaped with AppendText unless it is HTML already.
func (p *Page) AppendPage(body []byte, value func(b []byte, field int) []byte) []byte {
	for i, part := range p.parts {
		body = append(body, part...)
		if i < len(p.fields) {
			body = value(body, p.fields[i])
		}
	}
	return body
}

// AppendText appends s escaped as HTML text.
func AppendText(b []byte, s string) []byte {
	return append(b, template.HTMLEscapeString(s)...)
}

// The fields of the profile page: the user, the session's times as
// datetime and as text, the list of sessions, the second factor's state,
// the list of passkeys, a passkey's step-up field, the apps and the
// accounts at providers (the lists HTML made of rows).
const (
	ProfileUser = iota
	ProfileIssuedISO
	ProfileIssuedText
	ProfileExpiresISO
	ProfileExpiresText
	ProfileSessions
	ProfileFactor
	ProfilePasskeys
	ProfileStepUp
	ProfileApps
	ProfileLinks
	ProfileFields
)

// newProfilePage pre-renders the profile page, with or without its
// passkeys.
func newProfilePage(passkeys bool) *Page {
	return NewPage("profile.html", func(m []string) PageData {
		return PageData{Title: "Profile", User: m[ProfileUser], IssuedISO: m[ProfileIssuedISO], IssuedText: m[ProfileIssuedText],
			ExpiresISO: m[ProfileExpiresISO], ExpiresText: m[ProfileExpiresText], Sessions: template.HTML(m[ProfileSessions]),
			Status: m[ProfileFactor], Passkeys: template.HTML(m[ProfilePasskeys]), Passkey: passkeys, PasskeyStepUp: template.HTML(m[ProfileStepUp]),
			Apps: template.HTML(m[ProfileApps]), Links: template.HTML(m[ProfileLinks])}
	}, ProfileFields)
}

// The fields of a row of the profile's lists: what it names (a device, a
// passkey), a detail (the address, when the passkey was last used), a
// time as datetime and as text, the ID its forms send, and a passkey's
// step-up field; the line of sessions not listed has their count as its
// name.
const (
	RowName = iota
	RowDetail
	RowTimeISO
	RowTimeText
	RowID
	RowStepUp
	RowFields
)

// The profile page, with and without passkeys, and the rows of its
// lists: this session, another session with its sign-out form, the count
// of sessions not listed, and a passkey with its forms.
var (
	ProfilePage           = newProfilePage(true)
	ProfilePageNoPasskeys = newProfilePage(false)
	ThisSessionRow        = newRow("this-session")
	OtherSessionRow       = newRow("other-session")
	OtherSessionsRow      = NewPage("other-sessions", func(m []string) PageData { return PageData{Others: m[RowName]} }, 1)
	PasskeyRow            = newRow("passkey")
	AppRow                = newRow("app")
	AppsList              = NewPage("apps", func(m []string) PageData { return PageData{Apps: template.HTML(m[0])} }, 1)
	LinkRow               = newRow("link")
	LinksList             = NewPage("links", func(m []string) PageData { return PageData{Apps: template.HTML(m[0])} }, 1)
)

// newRow pre-renders a row of the profile's lists.
func newRow(name string) *Page {
	return NewPage(name, func(m []string) PageData {
		return PageData{Device: m[RowName], Address: m[RowDetail], IssuedISO: m[RowTimeISO], IssuedText: m[RowTimeText], SessionID: m[RowID],
			StepUp: template.HTML(m[RowStepUp])}
	}, RowFields)
}
