package sso

import (
	"slices"
	"strings"
	"testing"

	"github.com/caddy-miniapp/miniapp/internal/account"
)

// TestParseRules: every rule applies, repeated ones too, names and
// values percent-decoded; what is no rule is named for the log; a rule
// that names nothing valid, a factor other than 2 or a broken escape is
// refused.
func TestParseRules(t *testing.T) {
	ada := &account.Account{Name: "ada", Groups: []string{"admins", "staff"}}
	grace := &account.Account{Name: "grace"}
	for query, want := range map[string][2]bool{
		"":                          {true, true},
		"group=admins":              {true, false},
		"group=admins,staff":        {true, false},
		"group=staff&group=admins":  {true, false},
		"group=staff&group=nobody":  {false, false},
		"user=grace,bob":            {false, true},
		"user=ada&group=admins":     {true, false},
		"gr%6Fup=admins":            {true, false},
		"group=%61dmins":            {true, false},
		"us%65r=grace":              {false, true},
		"x=1&page=2&GROUP=nobody":   {true, true},
		"user=ada&user=grace":       {false, false},
		"group=admins&&group=staff": {true, false},
	} {
		rules, err := ParseRules(query)
		if err != nil {
			t.Errorf("%q: %v", query, err)
			continue
		}
		if got := [2]bool{rules.Allow(ada), rules.Allow(grace)}; got != want {
			t.Errorf("%q for ada and grace: %v, want %v", query, got, want)
		}
	}
	rules, err := ParseRules("factor=%32&groups=a&Group=b")
	if err != nil || rules.Factors != 2 || !slices.Equal(rules.Ignored, []string{"groups", "Group"}) {
		t.Errorf("factor and ignored names: %+v %v", rules, err)
	}
	for _, query := range []string{"group=", "group=a,,b", "factor=1", "factor=", "group=%zz", "gr%zzoup=a", "user=" + strings.Repeat("x", 2000), "user=a%0Ab"} {
		if _, err := ParseRules(query); err == nil || strings.Contains(err.Error(), query) {
			t.Errorf("%q: %v", query, err)
		}
	}
}

// TestDecide: the verdict for each kind of session and rule.
func TestDecide(t *testing.T) {
	ada := &account.Account{Name: "ada", Groups: []string{"admins"}}
	asked := 0
	session := func(factors uint8, mustEnrol, hasFactor bool) *Session {
		return &Session{Account: ada, Factors: factors, MustEnrol: mustEnrol, HasFactor: func() bool { asked++; return hasFactor }}
	}
	admins, _ := ParseRules("group=admins")
	staff, _ := ParseRules("group=staff")
	two, _ := ParseRules("factor=2")
	for _, tc := range []struct {
		name             string
		rules            Rules
		s                *Session
		covered, browser bool
		want             Verdict
	}{
		{"no session", admins, nil, true, true, SignIn},
		{"another domain's site", admins, session(1, false, false), false, true, SignIn},
		{"in the group", admins, session(1, false, false), true, false, Pass},
		{"outside the group", staff, session(2, false, false), true, true, NotAllowed},
		{"enrol-only, a browser", admins, session(1, true, false), true, true, Enrol},
		{"enrol-only, an API client", admins, session(1, true, false), true, false, Refuse},
		{"enrol-only with a factor since", admins, session(1, true, true), true, false, SignIn},
		{"one factor where two are asked, with a factor", two, session(1, false, true), true, true, SignIn},
		{"one factor where two are asked, an API client", two, session(1, false, true), true, false, Refuse},
		{"one factor where two are asked, no factor", two, session(1, false, false), true, true, Refuse},
		{"two factors where two are asked", two, session(2, false, true), true, false, Pass},
	} {
		if got := Decide(tc.rules, tc.s, tc.covered, tc.browser); got.Verdict != tc.want || (got.Verdict >= NotAllowed) != (got.Reason != "") {
			t.Errorf("%s: %+v, want %d", tc.name, got, tc.want)
		}
	}
	asked = 0
	Decide(admins, session(2, false, true), true, true)
	if asked != 0 {
		t.Error("a plain pass asked whether the account has a factor (a record read on the hot path)")
	}
}
