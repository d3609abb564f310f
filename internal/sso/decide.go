package sso

import "github.com/caddy-miniapp/miniapp/internal/account"

// Verdict is what a check answers.
type Verdict uint8

const (
	// Pass lets the request through: 200 with the user's Remote-*
	// headers.
	Pass Verdict = iota
	// SignIn sends a browser to the login page (302, or 401 with Location
	// for nginx) and answers other clients 401: there is no session for
	// the site, or the site asks for a factor the session lacks and the
	// account has.
	SignIn
	// Enrol sends a browser to the second factor's setup: the session may
	// only set one up.
	Enrol
	// NotAllowed refuses a user the site's group or user rules leave out
	// (403).
	NotAllowed
	// Refuse refuses the request with 403 and the Decision's reason.
	Refuse
)

// Session is what a check knows of the request's session.
type Session struct {
	// Account is the session's account.
	Account *account.Account
	// Factors is how the session began: 1 or 2.
	Factors uint8
	// MustEnrol is whether the session may only set up a second factor.
	MustEnrol bool
	// HasFactor reports whether the account has a second factor; asked
	// only when the answer depends on it (it may read a record).
	HasFactor func() bool
}

// Decision is a check's answer.
type Decision struct {
	Verdict Verdict
	// Reason is the one-line reason of a refusal.
	Reason string
}

// Decide answers a check of the site's rules for the session (nil: none)
// where covered says whether the session's cookie belongs to the site
// asked about, and browser whether the client takes HTML.
func Decide(rules Rules, s *Session, covered, browser bool) Decision {
	switch {
	case s == nil || !covered:
		return Decision{Verdict: SignIn}
	case s.MustEnrol:
		switch {
		case s.HasFactor():
			// a session from before the factor: sign in again with it
			return Decision{Verdict: SignIn}
		case !browser:
			return Decision{Verdict: Refuse, Reason: "second factor enrollment required"}
		}
		// to the setup, never back to the login page, which would loop
		return Decision{Verdict: Enrol}
	case rules.Factors > s.Factors:
		if browser && s.HasFactor() {
			return Decision{Verdict: SignIn}
		}
		return Decision{Verdict: Refuse, Reason: "this site requires a second factor"}
	case !rules.Allow(s.Account):
		return Decision{Verdict: NotAllowed, Reason: "this user may not use this site"}
	}
	return Decision{Verdict: Pass}
}
