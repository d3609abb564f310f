package passkey

import (
	"encoding/json"
	"strings"
	"testing"
)

// viewKeys are two passkeys, one never used and named with HTML.
func viewKeys() []Key {
	return []Key{
		{ID: []byte{0xfb, 0xff, 0x01}, Name: "<b>laptop</b>", Created: 1_772_368_200}, // 2026-03-01 12:30 UTC
		{ID: []byte{1, 2, 3}, Name: `phone "work" & co`, Created: 1_772_368_200, LastUsed: 1_772_371_800},
	}
}

// TestAppendJSON: the passkeys as the admin API's views, the name
// escaped, an empty list as [].
func TestAppendJSON(t *testing.T) {
	if got := string(AppendJSON([]byte("x"), nil)); got != "x[]" {
		t.Errorf("none: %s", got)
	}
	keys := viewKeys()
	b := AppendJSON([]byte(`{"passkeys":`), keys)
	var got struct {
		Passkeys []View `json:"passkeys"`
	}
	if err := json.Unmarshal(append(b, '}'), &got); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	if len(got.Passkeys) != 2 {
		t.Fatalf("%s", b)
	}
	for i, v := range got.Passkeys {
		want := ViewOf(keys[i])
		if v.ID != want.ID || v.Name != want.Name || !v.Created.Equal(want.Created) || (v.LastUsed == nil) != (want.LastUsed == nil) {
			t.Errorf("passkey %d: %+v, want %+v", i, v, want)
		}
	}
	if strings.Contains(string(b), "<b>") || !strings.Contains(string(b), `"last_used":null`) {
		t.Errorf("JSON %s", b)
	}
}

// TestAppendRows: each passkey with its name escaped, its last use
// ("never" before the first), its ID in both forms and the step-up
// field made for its ID, as HTML; a line when there is none.
func TestAppendRows(t *testing.T) {
	if got := string(AppendRows(nil, nil, nil)); !strings.Contains(got, "No passkeys yet.") {
		t.Errorf("none: %s", got)
	}
	var asked []string
	stepUp := func(b []byte, id string) []byte {
		asked = append(asked, id)
		return append(b, `<input name="current_code" data-for="`+id+`">`...)
	}
	page := string(AppendRows(nil, viewKeys(), stepUp))
	for _, want := range []string{
		"&lt;b&gt;laptop&lt;/b&gt;", "phone &#34;work&#34; &amp; co", "last used never", "last used Sun, 01 Mar 2026 13:30 UTC",
		`datetime="2026-03-01T12:30:00Z"`, `value="-_8B"`, `value="AQID"`, `id="rename--_8B"`,
		`<input name="current_code" data-for="-_8B">`, `<input name="current_code" data-for="AQID">`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("rows lack %q:\n%s", want, page)
		}
	}
	if strings.Contains(page, "<b>") || strings.Contains(page, `"work"`) {
		t.Errorf("a name as it is:\n%s", page)
	}
	if len(asked) != 2 || asked[0] != "-_8B" || asked[1] != "AQID" {
		t.Errorf("step-up asked for %v", asked)
	}
	if strings.Count(page, `action="/profile/passkeys"`) != 4 {
		t.Errorf("want a rename and a delete form for each:\n%s", page)
	}
}
