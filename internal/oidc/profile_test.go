package oidc

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestParseGrant(t *testing.T) {
	if id, ok := ParseGrant(strings.Repeat("ab", 16)); !ok || len(id) != 16 {
		t.Errorf("a grant ID: %x %v", id, ok)
	}
	for _, s := range []string{"", "zz", strings.Repeat("ab", 15), strings.Repeat("ab", 17)} {
		if _, ok := ParseGrant(s); ok {
			t.Errorf("ParseGrant(%q) accepted", s)
		}
	}
}

// TestAppendApps: the profile's apps, by the client's name (its ID when
// it has none, or is no longer configured), escaped.
func TestAppendApps(t *testing.T) {
	f := newFixture(t)
	if got := f.p.AppendApps(nil, nil); len(got) != 0 {
		t.Errorf("no grants: %q, want nothing", got)
	}
	since := time.Date(2026, 12, 7, 1, 2, 3, 0, time.UTC)
	grants := []GrantInfo{{ID: strings.Repeat("ab", 16), Client: "<gone>", Created: since}}
	page := string(f.p.AppendApps(nil, grants))
	if !strings.Contains(page, "&lt;gone&gt;") || strings.Contains(page, "<gone>") || !strings.Contains(page, "2026-12-07T01:02:03Z") ||
		!strings.Contains(page, strings.Repeat("ab", 16)) {
		t.Errorf("the apps list: %s", page)
	}
	var views []AppView
	if err := json.Unmarshal(f.p.AppendAppsJSON(nil, grants), &views); err != nil || len(views) != 1 || views[0].Name != "<gone>" ||
		views[0].Since != "2026-12-07T01:02:03Z" || views[0].Grant != grants[0].ID {
		t.Errorf("the apps as JSON: %+v %v", views, err)
	}
}
