package gate

import (
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/session"
	"github.com/caddy-miniapp/miniapp/store"
)

// TestDeviceName names the browser and system from known names only.
func TestDeviceName(t *testing.T) {
	for header, want := range map[string]string{
		"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0":                                                                  "Firefox on Linux",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1": "Safari on iPhone",
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36":                         "Chrome on Windows",
		"curl/8.5.0":                       store.UnknownDevice,
		"":                                 store.UnknownDevice,
		"<img src=x onerror=alert(1)>/1.0": store.UnknownDevice,
	} {
		if got := DeviceName(header); got != want {
			t.Errorf("DeviceName(%q) = %q, want %q", header, got, want)
		}
	}
}

// TestViewOf: the admin API's view of an index entry, in UTC, with one
// factor at least and an account label that tells accounts apart
// without showing their IDs.
func TestViewOf(t *testing.T) {
	e := store.Entry{ID: [16]byte{0xab, 1}, Account: store.AccountID{7}, Address: "192.0.2.7", Device: "Firefox on Linux",
		Started: time.Unix(1000, 0).In(time.FixedZone("X", 3600)), Expires: time.Unix(5000, 0)}
	v := ViewOf(e)
	if v.ID != "ab010000000000000000000000000000" || v.Address != "192.0.2.7" || v.Device != "Firefox on Linux" || v.Factors != 1 ||
		v.Started != time.Unix(1000, 0).UTC() || v.Started.Location() != time.UTC || !v.Expires.Equal(time.Unix(5000, 0)) {
		t.Errorf("view %+v", v)
	}
	if len(v.Account) != 8 || strings.Contains(v.Account, "07") {
		t.Errorf("account label %q", v.Account)
	}
	e.Factors = 2
	if v2 := ViewOf(e); v2.Factors != 2 || v2.Account != v.Account {
		t.Errorf("same account, two factors: %+v", v2)
	}
	e.Account = store.AccountID{8}
	if ViewOf(e).Account == v.Account {
		t.Error("two accounts share a label")
	}
}

func TestParseSessionID(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"00112233445566778899aabbccddeeff", true},
		{"00112233445566778899AABBCCDDEEFF", true},
		{"00112233445566778899aabbccddee", false},
		{"00112233445566778899aabbccddeeff00", false},
		{"00112233445566778899aabbccddeefg", false},
		{"", false},
	} {
		id, err := ParseSessionID(tc.in)
		if (err == nil) != tc.ok || (err != nil && err != ErrSessionID) {
			t.Errorf("%q: %v", tc.in, err)
		}
		if tc.ok && hex.EncodeToString(id[:]) != strings.ToLower(tc.in) {
			t.Errorf("%q read as %x", tc.in, id)
		}
	}
}

// TestAppendJSONString: the string decodes as the one encoding/json
// writes (invalid UTF-8 as U+FFFD) and, like encoding/json's, holds no
// HTML character, control or line separator as it is, so it is safe in
// a page too.
func TestAppendJSONString(t *testing.T) {
	for _, s := range []string{"", "plain", `q"uote\back`, "<b>&amp;</b>", "tab\tnl\ncr\r\x00\x1f", "line\u2028para\u2029",
		"é on iPhone ☃", "bad \xff utf8", "\x7f"} {
		got := AppendJSONString([]byte("x"), s)
		if got[0] != 'x' {
			t.Fatalf("%q: did not append: %s", s, got)
		}
		var decoded, want string
		marshalled, _ := json.Marshal(s)
		if err := json.Unmarshal(got[1:], &decoded); err != nil {
			t.Errorf("%q: %s is no JSON string: %v", s, got[1:], err)
			continue
		}
		_ = json.Unmarshal(marshalled, &want)
		if decoded != want {
			t.Errorf("%q: decodes as %q, want %q", s, decoded, want)
		}
		if strings.ContainsAny(string(got[1:]), "<>&\u2028\u2029\t\n\r\x00\x1f") {
			t.Errorf("%q: %s holds a character as it is", s, got[1:])
		}
	}
}

// TestAppendJSON: the profile's sessions as JSON that decodes to the
// admin API's fields, plus which one is current.
func TestAppendJSON(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	sessions := []store.Entry{
		{ID: [16]byte{1}, Device: "<b>Firefox</b>", Address: "192.0.2.7", Started: now, Expires: now.Add(time.Hour), Factors: 2},
		{ID: [16]byte{2}, Device: "Chrome on Windows", Address: "2001:db8::1", Started: now.Add(-time.Hour), Expires: now.Add(time.Minute)},
	}
	b := AppendJSON([]byte(`{"sessions":`), sessions, [16]byte{2})
	var got struct {
		Sessions []struct {
			View
			Current bool `json:"current"`
		} `json:"sessions"`
	}
	if err := json.Unmarshal(append(b, '}'), &got); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	if len(got.Sessions) != 2 {
		t.Fatalf("%s", b)
	}
	for i, s := range got.Sessions {
		want := ViewOf(sessions[i])
		want.Account = ""
		if s.View != want || s.Current != (i == 1) {
			t.Errorf("session %d: %+v, want %+v current %v", i, s, want, i == 1)
		}
	}
	if strings.Contains(string(b), "<b>") {
		t.Errorf("HTML in the JSON as it is: %s", b)
	}
	if got := AppendJSON(nil, nil, [16]byte{}); string(got) != "[]" {
		t.Errorf("no sessions: %s", got)
	}
}

// TestAppendRows: this session without a sign-out form, every other one
// with its own, names and addresses escaped, and a line for the
// sessions not listed.
func TestAppendRows(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 30, 0, 0, time.UTC)
	sessions := []store.Entry{
		{ID: [16]byte{1}, Device: "Firefox on Linux", Address: "192.0.2.7", Started: now, Via: "github"},
		{ID: [16]byte{2}, Device: "<b>bold</b>", Address: `"><script>`, Started: now.Add(-time.Hour)},
	}
	page := string(AppendRows(nil, sessions, [16]byte{1}, 0, strings.ToUpper))
	for _, want := range []string{"Firefox on Linux", "this device", "192.0.2.7 · via GITHUB", "&lt;b&gt;bold&lt;/b&gt;", "&#34;&gt;&lt;script&gt;",
		`value="02000000000000000000000000000000"`, `datetime="2026-03-01T11:30:00Z"`, "Sun, 01 Mar 2026 12:30 UTC"} {
		if !strings.Contains(page, want) {
			t.Errorf("rows lack %q:\n%s", want, page)
		}
	}
	for _, never := range []string{"<b>", "<script>", `value="01000000000000000000000000000000"`, "not listed"} {
		if strings.Contains(page, never) {
			t.Errorf("rows hold %q:\n%s", never, page)
		}
	}
	if strings.Count(page, `action="/logout"`) != 1 {
		t.Errorf("want one sign-out form, for the other session:\n%s", page)
	}
	if more := string(AppendRows(nil, nil, [16]byte{}, 3, strings.ToUpper)); !strings.Contains(more, "not listed: 3") {
		t.Errorf("others: %s", more)
	}
}

// TestSessions: the profile lists this session even where the index
// does not (yet), in its place by age, as the client that asks; and
// not twice where it does.
func TestSessions(t *testing.T) {
	g := newGate(t, Domain{})
	acct := ada(t, g)
	wire := Wire{Host: "app.example.test"}
	_, older, _ := start(t, g, wire, 1)
	g.Clock.Advance(time.Minute)
	_, newer, _ := start(t, g, wire, 1)
	listed, others := g.Sessions(nil, newer, Client{IP: "198.51.100.1", UserAgent: "curl/8"})
	if len(listed) != 2 || others != 0 || listed[0].ID != newer.ID || listed[1].ID != older.ID || listed[0].Address != "192.0.2.7" {
		t.Fatalf("indexed: %+v %d", listed, others)
	}
	// a session of another node, not yet read from the store, started
	// between the two
	unseen := session.New("ada", acct.ID.Tag(), 0, older.Issued.Add(30*time.Second), testLifetime)
	listed, _ = g.Sessions(nil, &Session{Session: unseen, Account: acct}, Client{IP: "198.51.100.1", UserAgent: firefox})
	if len(listed) != 3 || listed[1].ID != unseen.ID || listed[1].Address != "198.51.100.1" || listed[1].Device != "Firefox on Linux" {
		t.Errorf("an unindexed session: %+v", listed)
	}
}
