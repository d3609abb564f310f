package web

import (
	"bytes"
	"html/template"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
)

// fillPage fills the page with the values, escaped but for the raw
// fields, which are HTML.
func fillPage(p *Page, values []string, raw ...int) []byte {
	return p.AppendPage(nil, func(b []byte, field int) []byte {
		if slices.Contains(raw, field) {
			return append(b, values[field]...)
		}
		return AppendText(b, values[field])
	})
}

// TestProfilePage checks the pre-rendered profile page and its session
// rows against the templates themselves, with values that need escaping.
func TestProfilePage(t *testing.T) {
	for _, user := range []string{"ada", `<b>"o'neil"</b> & co`, "élodie", "miniappfield1x"} {
		values := []string{user, "2026-11-24T03:17:11Z", "Tue, 24 Nov 2026 03:17 UTC", "2026-11-24T15:17:11Z", "Tue, 24 Nov 2026 15:17 UTC", "<li>a row</li>\n", "on <b>x</b>", "<li>a key</li>\n",
			`<input id="passkey-step-up" name="password">`, "<h2>Apps</h2>\n", "<h2>Links</h2>\n"}
		for passkeys, p := range map[bool]*Page{true: ProfilePage, false: ProfilePageNoPasskeys} {
			var want bytes.Buffer
			err := pages.ExecuteTemplate(&want, "profile.html", PageData{Title: "Profile",
				User: values[0], IssuedISO: values[1], IssuedText: values[2], ExpiresISO: values[3], ExpiresText: values[4], Sessions: template.HTML(values[5]), Status: values[6],
				Passkeys: template.HTML(values[7]), Passkey: passkeys, PasskeyStepUp: template.HTML(values[8]), Apps: template.HTML(values[9]),
				Links: template.HTML(values[10])})
			if err != nil {
				t.Fatal(err)
			}
			if got := fillPage(p, values, ProfileSessions, ProfilePasskeys, ProfileStepUp, ProfileApps, ProfileLinks); !bytes.Equal(got, want.Bytes()) {
				t.Errorf("user %q, passkeys %v: pre-rendered page differs from the template:\n%s\n---\n%s", user, passkeys, got, want.Bytes())
			}
		}
	}
	var want bytes.Buffer
	if err := pages.ExecuteTemplate(&want, "apps", PageData{Apps: "<li>an app</li>\n"}); err != nil {
		t.Fatal(err)
	}
	if got := fillPage(AppsList, []string{"<li>an app</li>\n"}, 0); !bytes.Equal(got, want.Bytes()) {
		t.Errorf("the list of apps differs from the template:\n%s\n---\n%s", got, want.Bytes())
	}
	want.Reset()
	if err := pages.ExecuteTemplate(&want, "links", PageData{Apps: "<li>a link</li>\n"}); err != nil {
		t.Fatal(err)
	}
	if got := fillPage(LinksList, []string{"<li>a link</li>\n"}, 0); !bytes.Equal(got, want.Bytes()) {
		t.Errorf("the list of links differs from the template:\n%s\n---\n%s", got, want.Bytes())
	}
	for _, device := range []string{"Firefox on Linux", `<b>"x'</b> & y`, "miniappfield4x"} {
		values := []string{device, "203.0.113.7", "2026-11-24T03:17:11Z", "Tue, 24 Nov 2026 03:17 UTC", "00112233445566778899aabbccddeeff",
			`<input name="current_code">`}
		data := PageData{Device: values[0], Address: values[1], IssuedISO: values[2], IssuedText: values[3], SessionID: values[4], StepUp: template.HTML(values[5])}
		for name, row := range map[string]*Page{"this-session": ThisSessionRow, "other-session": OtherSessionRow, "passkey": PasskeyRow, "app": AppRow,
			"link": LinkRow} {
			var want bytes.Buffer
			if err := pages.ExecuteTemplate(&want, name, data); err != nil {
				t.Fatal(err)
			}
			if got := fillPage(row, values, RowStepUp); !bytes.Equal(got, want.Bytes()) {
				t.Errorf("%s of %q: pre-rendered row differs from the template:\n%s\n---\n%s", name, device, got, want.Bytes())
			}
		}
	}
}

// TestSetupGroups shows a key in groups of four, the last one shorter.
func TestSetupGroups(t *testing.T) {
	for key, want := range map[string]string{"ABCDEFGHIJ": "ABCD EFGH IJ", "ABCD": "ABCD", "": ""} {
		if got := strings.Join((&Setup{Secret: key}).Groups(), " "); got != want {
			t.Errorf("%q: %q, want %q", key, got, want)
		}
	}
}

// TestPageMessages: a page's message starts with a capital, whatever
// the one-line reason (kept as it is for text and JSON); every page
// links back to the site.
func TestPageMessages(t *testing.T) {
	for reason, want := range map[string]string{"invalid code": "Invalid code", "élan": "Élan", "2 tries left": "2 tries left", "": ""} {
		if got := capital(reason); got != want {
			t.Errorf("%q: %q, want %q", reason, got, want)
		}
	}
	w := httptest.NewRecorder()
	if err := (Site{}).Render(w, httptest.NewRequest("GET", "/login", nil), 401, "login.html", PageData{Title: "Sign in", Error: "invalid username or password"}); err != nil {
		t.Fatal(err)
	}
	if body := w.Body.String(); !strings.Contains(body, ">Invalid username or password<") || !strings.Contains(body, `<a href="/">Back to the site</a>`) {
		t.Errorf("login page: %s", body)
	}
}

// TestStableStylesheet serves the stylesheet under its stable name for
// five minutes, under its hashed name for a year.
func TestStableStylesheet(t *testing.T) {
	for path, cache := range map[string]string{StablePath: "public, max-age=300", StylePath: "public, max-age=31536000, immutable"} {
		w := httptest.NewRecorder()
		if err := ServeAsset(w, httptest.NewRequest("GET", path, nil), TextCSS, Stylesheet); err != nil || w.Header().Get("Cache-Control") != cache ||
			w.Body.Len() != len(Stylesheet) {
			t.Errorf("%s: %v %v", path, err, w.Header())
		}
	}
}
