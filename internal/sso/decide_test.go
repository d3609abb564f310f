package sso

import (
	"testing"

	"github.com/caddy-miniapp/miniapp/internal/account"
)

// TestDecideOrder: the checks apply in order (a session for the site,
// enrolment, the factor rule, then the group and user rules), each with
// its own verdict and reason, and whether the account has a factor is
// asked only where the verdict turns on it: never on the way to a pass,
// a sign-in for want of a session, or an API client's refusal.
func TestDecideOrder(t *testing.T) {
	ada := &account.Account{Name: "ada", Groups: []string{"staff"}}
	rules := func(query string) Rules {
		r, err := ParseRules(query)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	const (
		enrolReason  = "second factor enrollment required"
		factorReason = "this site requires a second factor"
		userReason   = "this user may not use this site"
	)
	for _, tc := range []struct {
		name             string
		query            string
		factors          uint8
		mustEnrol        bool
		hasFactor        *bool // nil: must not be asked
		covered, browser bool
		want             Verdict
		reason           string
	}{
		{"no rules, one factor", "", 1, false, nil, true, false, Pass, ""},
		{"a user rule that names the user", "user=grace,ada", 1, false, nil, true, true, Pass, ""},
		{"a user rule that does not", "user=grace", 2, false, nil, true, true, NotAllowed, userReason},
		{"user and group rules, the group missing", "user=ada&group=admins", 2, false, nil, true, false, NotAllowed, userReason},
		{"not covered, enrol-only", "", 1, true, nil, false, true, SignIn, ""},
		{"not covered, outside the group", "group=admins", 2, false, nil, false, false, SignIn, ""},
		{"enrol-only before the factor rule", "factor=2", 1, true, ptr(false), true, true, Enrol, ""},
		{"enrol-only before the group rule", "group=admins", 1, true, ptr(false), true, true, Enrol, ""},
		{"enrol-only API client outside the group", "group=admins", 1, true, ptr(false), true, false, Refuse, enrolReason},
		{"enrol-only with a factor since, before the group rule", "group=admins", 1, true, ptr(true), true, true, SignIn, ""},
		{"the factor rule before the group rule, a browser", "factor=2&group=admins", 1, false, ptr(true), true, true, SignIn, ""},
		{"the factor rule before the group rule, an API client", "factor=2&group=admins", 1, false, nil, true, false, Refuse, factorReason},
		{"the factor rule, a browser without a factor", "factor=2&user=ada", 1, false, ptr(false), true, true, Refuse, factorReason},
		{"two factors, outside the group", "factor=2&group=admins", 2, false, nil, true, true, NotAllowed, userReason},
		{"two factors, in the group", "factor=2&group=staff&user=ada", 2, false, nil, true, false, Pass, ""},
	} {
		asked := 0
		s := &Session{Account: ada, Factors: tc.factors, MustEnrol: tc.mustEnrol}
		if tc.hasFactor != nil {
			has := *tc.hasFactor
			s.HasFactor = func() bool { asked++; return has }
		} // else a nil HasFactor panics if asked
		got := Decide(rules(tc.query), s, tc.covered, tc.browser)
		if got.Verdict != tc.want || got.Reason != tc.reason {
			t.Errorf("%s: %+v, want %d %q", tc.name, got, tc.want, tc.reason)
		}
		if tc.hasFactor != nil && asked != 1 {
			t.Errorf("%s: asked %d times whether the account has a factor, want once", tc.name, asked)
		}
	}
}

// TestDecideNoSession: without a session nothing of it is asked,
// whatever the rules and client.
func TestDecideNoSession(t *testing.T) {
	for _, query := range []string{"", "factor=2", "group=admins&user=ada"} {
		r, err := ParseRules(query)
		if err != nil {
			t.Fatal(err)
		}
		for _, browser := range []bool{false, true} {
			if got := Decide(r, nil, true, browser); got != (Decision{Verdict: SignIn}) {
				t.Errorf("%q, browser %v: %+v", query, browser, got)
			}
		}
	}
}

func ptr(b bool) *bool { return &b }
