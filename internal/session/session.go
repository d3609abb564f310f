// Package session owns what a session is and how its cookie is sealed
// and opened: the session value, the key ring (seal, open, rotation) and
// the session's times, checked at the cookie's resolution of whole
// seconds. It takes keys, times and account tags as values; it knows
// nothing of Caddy's handler, of requests or of stores (loading or
// generating a realm's key set is the caller's job; the set's format is
// here).
package session

import (
	"crypto/rand"
	"math"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/account"
)

// Session is what the cookie carries: who signed in, which session it
// is, and its times (whole seconds).
type Session struct {
	// User is the name of the signed-in account.
	User string
	// ID identifies the session for revocation; random per login.
	ID [16]byte
	// Account tags the account the session was issued for: a session of
	// another site's account of the same name, or of a password hash
	// since changed, is refused.
	Account account.Tag
	// Counter is the user's sign-out counter at login: signing out
	// everywhere raises the counter, ending every session below it.
	Counter uint32
	// Generation is the realm store's generation at login: a store that
	// lost its data starts a new one, ending every session of the old.
	Generation uint64
	// Issued is when the user signed in.
	Issued time.Time
	// Expires is the absolute end of the session.
	Expires time.Time
	// LastSeen is when the cookie was last issued, for idle expiry.
	LastSeen time.Time
	// Factors is how the session began: 1 with a password alone, 2 with
	// a second factor too.
	Factors uint8
	// Method is what the first factor was: a password, a passkey or
	// another provider's word.
	Method Method
	// Guest is what a provider said of a guest (a user without an
	// account here, named <provider>:<id>), carried in the cookie; nil
	// for a configured account's session.
	Guest *Guest
}

// Guest is what a guest's provider said of them: a display name, an
// e-mail address it verified (or none), and its groups there (without
// the provider's prefix), each free of NUL, commas and white space.
type Guest struct {
	Name, Email string
	Groups      []string
}

// Method is how a session began.
type Method uint8

// The methods a session begins with.
const (
	// MethodPassword is a password (and, of two factors, a one-time or
	// recovery code).
	MethodPassword Method = iota
	// MethodPasskey is a passkey (of two factors when it verified its
	// user).
	MethodPasskey
	// MethodProvider is another provider's word (sign_in_with; of two
	// factors with a code here too, or a second factor the provider
	// checked and the operator trusts).
	MethodProvider
	// MethodTrusted is a password on a browser trusted for the second
	// factor (remember_second_factor): two factors for access, never for
	// a step-up.
	MethodTrusted
)

// String names the method as the logs do.
func (m Method) String() string {
	switch m {
	case MethodPasskey:
		return "passkey"
	case MethodProvider:
		return "provider"
	case MethodTrusted:
		return "trusted"
	}
	return "password"
}

// New starts a session of the account at now with a fresh random ID, so
// a session ID planted before login is never carried over.
func New(user string, tag account.Tag, counter uint32, now time.Time, lifetime time.Duration) *Session {
	now = now.Truncate(time.Second)
	return &Session{
		User:     user,
		ID:       [16]byte(Random(16)),
		Account:  tag,
		Counter:  counter,
		Issued:   now,
		Expires:  now.Add(wholeSeconds(lifetime)),
		LastSeen: now,
		Factors:  1,
	}
}

// Live reports whether the session is within its absolute expiry, the
// lifetime and the idle window at now. The cookie keeps whole seconds,
// so now is compared at that resolution: a session lives at least its
// full lifetime and idle window, never a fraction of a second less. The
// lifetime and idle window given apply to sessions issued under an
// earlier config too.
func (s *Session) Live(now time.Time, lifetime, idle time.Duration) bool {
	now = now.Truncate(time.Second)
	return !now.After(s.Expires) && now.Sub(s.Issued) <= wholeSeconds(lifetime) && now.Sub(s.LastSeen) <= wholeSeconds(idle)
}

// wholeSeconds rounds d up to the cookie's resolution, so that a window
// of a fraction of a second more is not cut short.
func wholeSeconds(d time.Duration) time.Duration {
	return (d + time.Second - 1).Truncate(time.Second)
}

// Renewed returns the session with now as its time of last use once
// less than half of the idle window is left, so an active session does
// not lapse, and nil before then. The absolute expiry stays.
func (s *Session) Renewed(now time.Time, idle time.Duration) *Session {
	now = now.Truncate(time.Second)
	if now.Sub(s.LastSeen) < idle/2 {
		return nil
	}
	renewed := *s
	renewed.LastSeen = now
	return &renewed
}

// MaxAge is the cookie's Max-Age at now, in seconds: until the session's
// expiry, rounded up, so the browser keeps the cookie for the whole
// lifetime (and never past the second in which Live refuses it).
func (s *Session) MaxAge(now time.Time) int {
	return int(math.Ceil(s.Expires.Sub(now).Seconds()))
}

// Random returns n bytes from the system's secure random source.
func Random(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails; crashes the program if the source does
	return b
}
