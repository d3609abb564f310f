package miniapp

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/gate"
	"github.com/caddy-miniapp/miniapp/internal/session"
	"github.com/caddy-miniapp/miniapp/store"
)

// User-Agent headers of two browsers.
const (
	firefoxUA = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
	iphoneUA  = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)

// loginWith signs user in from a browser with the User-Agent header ua,
// and returns the session cookie and its session.
func (a *testApp) loginWith(user, ua string) (*http.Cookie, *session.Session) {
	a.t.Helper()
	w := a.do(request{method: "POST", target: "/login", contentType: form,
		body: "username=" + user + "&password=" + map[string]string{"ada": adaPassword, "grace": gracePassword}[user], header: map[string]string{"User-Agent": ua}})
	if w.Code != http.StatusSeeOther {
		a.t.Fatalf("login %s: %d %s", user, w.Code, w.Body.String())
	}
	c := sessionCookie(a.t, w)
	s, err := a.open(c.Value)
	if err != nil {
		a.t.Fatal(err)
	}
	return c, s
}

// profileSession is a session in the profile's JSON.
type profileSession struct {
	gate.View
	Current bool `json:"current"`
}

// TestProfileSessionsJSON: the hand-built sessions array decodes to what
// encoding/json makes of the same sessions, with strings that need
// escaping and invalid UTF-8.
func TestProfileSessionsJSON(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	var sessions []store.Entry
	var want []profileSession
	for _, text := range []string{"Firefox on Linux", `"quoted" \ back`, "<b>&amp;</b>\n\t\x00", "é\u2028\xff", ""} {
		e := entryOf(store.AccountID(session.Random(16)), now)
		e.Device, e.Address = text, text
		sessions = append(sessions, e)
		view := gate.ViewOf(e)
		view.Account = "" // the admin API's alone
		want = append(want, profileSession{view, len(sessions) == 2})
	}
	body := gate.AppendJSON(nil, sessions, sessions[1].ID)
	var got []profileSession
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatalf("%s: %v", body, err)
	}
	// what encoding/json writes, read back the same way
	wantJSON, _ := json.Marshal(want)
	if err := json.Unmarshal(wantJSON, &want); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("hand-built sessions decode to\n%+v\nwant\n%+v", got, want)
	}
	if bytes.ContainsAny(body, "<>&\n") {
		t.Errorf("unescaped HTML or control characters: %s", body)
	}
	if string(gate.AppendJSON(nil, nil, [16]byte{})) != "[]" {
		t.Errorf("no sessions is not []")
	}
}

// profileJSON is GET /profile as JSON.
type profileJSON struct {
	Username      string           `json:"username"`
	Sessions      []profileSession `json:"sessions"`
	OtherSessions int              `json:"other_sessions"`
}

// TestProfileListsSessions shows the account's sessions on the profile,
// newest first, this one marked, as JSON and as a page, with device names
// and never the raw User-Agent.
func TestProfileListsSessions(t *testing.T) {
	a := newApp(t, "", nil)
	first, s1 := a.loginWith("ada", firefoxUA)
	a.advance(2 * 1e9)
	_, s2 := a.loginWith("ada", iphoneUA+" <script>")
	a.loginWith("grace", firefoxUA)

	w := a.do(request{target: "/profile", cookie: first, accept: "application/json"})
	var p profileJSON
	if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil || w.Code != 200 {
		t.Fatalf("profile JSON: %d %v %s", w.Code, err, w.Body)
	}
	if len(p.Sessions) != 2 || p.OtherSessions != 0 {
		t.Fatalf("sessions %+v, others %d; want ada's two", p.Sessions, p.OtherSessions)
	}
	newest, older := p.Sessions[0], p.Sessions[1]
	if newest.ID != hex.EncodeToString(s2.ID[:]) || newest.Current || newest.Device != "Safari on iPhone" || newest.Address != a.ip {
		t.Errorf("newest session %+v, want the iPhone's, not current, from %s", newest, a.ip)
	}
	if older.ID != hex.EncodeToString(s1.ID[:]) || !older.Current || older.Device != "Firefox on Linux" ||
		!older.Started.Equal(s1.Issued) || !older.Expires.Equal(s1.Expires) {
		t.Errorf("this session %+v, want the Firefox one, current, with its times", older)
	}

	page := a.do(request{target: "/profile", cookie: first}).Body.String()
	for _, want := range []string{"Safari on iPhone", "Firefox on Linux", `<span class="this">this device</span>`, `name="session" value="` + newest.ID + `"`, `<div id="passkey-proof" hidden>`} {
		if !strings.Contains(page, want) {
			t.Errorf("profile page lacks %q", want)
		}
	}
	if strings.Count(page, `name="session"`) != 1 || strings.Contains(page, "<script>") || strings.Contains(page, "Mozilla") {
		t.Errorf("profile page: want one sign-out form for the other session and no header text:\n%s", page)
	}
}

// TestEndOtherSession ends another session of the user from the profile:
// refused at once, the own session kept; a cross-site POST, another
// user's session, an unknown ID and a malformed one are refused.
func TestEndOtherSession(t *testing.T) {
	a := newApp(t, "", nil)
	first, _ := a.loginWith("ada", firefoxUA)
	second, s2 := a.loginWith("ada", iphoneUA)
	grace, sg := a.loginWith("grace", firefoxUA)
	end := func(cookie *http.Cookie, id string, header map[string]string) int {
		return a.do(request{method: "POST", target: "/logout", cookie: cookie, contentType: form, body: "session=" + id, header: header}).Code
	}
	for _, c := range []struct {
		name   string
		cookie *http.Cookie
		id     string
		header map[string]string
		want   int
	}{
		{"cross-site", first, hex.EncodeToString(s2.ID[:]), map[string]string{"Sec-Fetch-Site": "cross-site"}, 403},
		{"another user's session", first, hex.EncodeToString(sg.ID[:]), nil, 404},
		{"unknown", first, hex.EncodeToString(session.Random(16)), nil, 404},
		{"malformed", first, "zz", nil, 400},
		{"signed out", nil, hex.EncodeToString(s2.ID[:]), map[string]string{"Accept": "application/json"}, 401},
	} {
		if got := end(c.cookie, c.id, c.header); got != c.want {
			t.Errorf("%s: %d, want %d", c.name, got, c.want)
		}
	}
	for _, c := range []*http.Cookie{second, grace} {
		if w := a.do(request{target: "/profile", cookie: c}); w.Code != 200 {
			t.Fatalf("a session ended by a refused request: %d", w.Code)
		}
	}
	// its own ID, in capitals, is a plain logout that clears the cookie
	own, ownSession := a.loginWith("ada", firefoxUA)
	w := a.do(request{method: "POST", target: "/logout", cookie: own, contentType: form, body: "session=" + strings.ToUpper(hex.EncodeToString(ownSession.ID[:]))})
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/login" || !strings.Contains(w.Header().Get("Set-Cookie"), "Max-Age=0") {
		t.Errorf("ending the own session by ID: %d to %q, Set-Cookie %q", w.Code, w.Header().Get("Location"), w.Header().Get("Set-Cookie"))
	}

	w = a.do(request{method: "POST", target: "/logout", cookie: first, contentType: form,
		body: "session=" + hex.EncodeToString(s2.ID[:]), header: map[string]string{"Origin": "http://example.com"}})
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/profile" {
		t.Fatalf("ending the other session: %d to %q", w.Code, w.Header().Get("Location"))
	}
	if w := a.do(request{target: "/profile", cookie: second, accept: "application/json"}); w.Code != 401 {
		t.Errorf("the ended session: %d, want 401", w.Code)
	}
	var p profileJSON
	w = a.do(request{target: "/profile", cookie: first, accept: "application/json"})
	if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil || w.Code != 200 || len(p.Sessions) != 1 || !p.Sessions[0].Current {
		t.Errorf("the own session after ending the other: %d %+v %v", w.Code, p.Sessions, err)
	}
	logs := a.logs.FilterMessage("session ended").All()
	if len(logs) != 1 || logs[0].ContextMap()["by"] != "profile page" || logs[0].ContextMap()["user"] != "ada" ||
		strings.Contains(logs[0].Message+logs[0].ContextMap()["session"].(string), second.Value) {
		t.Errorf("log of the ending: %+v", logs)
	}
}

// TestProfileShowsUnindexedSession: a session whose login the index has
// not seen (not yet read from the store) is listed from its cookie, in
// its place among the others.
func TestProfileShowsUnindexedSession(t *testing.T) {
	a := newApp(t, "", nil)
	_, older := a.loginWith("ada", firefoxUA)
	a.advance(2 * time.Second)
	s := a.newSession("ada")
	a.advance(2 * time.Second)
	_, newer := a.loginWith("ada", iphoneUA)
	cookie := a.seal(s)
	var p profileJSON
	w := a.do(request{target: "/profile", cookie: cookie, accept: "application/json", header: map[string]string{"User-Agent": firefoxUA}})
	if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil || len(p.Sessions) != 3 {
		t.Fatalf("profile of an unindexed session: %d %s %v", w.Code, w.Body, err)
	}
	ids := []string{hex.EncodeToString(newer.ID[:]), hex.EncodeToString(s.ID[:]), hex.EncodeToString(older.ID[:])}
	for i, e := range p.Sessions {
		if e.ID != ids[i] || e.Current != (i == 1) {
			t.Errorf("session %d: %+v, want ID %s, current %v", i, e, ids[i], i == 1)
		}
	}
}

// TestProfileConcurrent: pages and JSON built at once for two users, in
// buffers kept between requests, are each the same as the one built
// alone for that user and form.
func TestProfileConcurrent(t *testing.T) {
	a := newApp(t, "", nil)
	cookies := map[string]*http.Cookie{"ada": a.login("ada", adaPassword, true), "grace": a.login("grace", gracePassword, true)}
	var wg sync.WaitGroup
	for user, c := range cookies {
		for _, accept := range []string{"text/html", "application/json"} {
			alone := a.do(request{target: "/profile", accept: accept, cookie: c, https: true}).Body.String()
			if !strings.Contains(alone, user) {
				t.Fatalf("%s's profile as %s does not name them:\n%s", user, accept, alone)
			}
			wg.Go(func() {
				for range 200 {
					w := a.do(request{target: "/profile", accept: accept, cookie: c, https: true})
					body := w.Body.String()
					if w.Code != http.StatusOK || body != alone || w.Header().Get("Content-Length") != strconv.Itoa(len(body)) {
						t.Errorf("%s's profile as %s: %d, %d bytes (Content-Length %s):\n%s\nalone:\n%s", user, accept, w.Code, len(body), w.Header().Get("Content-Length"), body, alone)
						return
					}
				}
			})
		}
	}
	wg.Wait()
}
