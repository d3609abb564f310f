package signin

import (
	"context"
	"net/http"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/account"
	"github.com/caddy-miniapp/miniapp/internal/gate"
	"github.com/caddy-miniapp/miniapp/internal/session"
	"github.com/caddy-miniapp/miniapp/internal/web"
	"github.com/caddy-miniapp/miniapp/store"
)

// RecentSignIn is how recent a sign-in must be to change the account's
// sign-in methods without a further proof (see StepUp): a stolen
// session must not enrol its own factor and lock the owner out.
const RecentSignIn = 10 * time.Minute

// StepUp is what a change of the account's sign-in methods (adding or
// deleting a passkey, setting up, replacing or turning off one-time
// codes, new recovery codes) needs besides a signed-in session of the
// owner: one policy for every such change, so that a stolen password or
// session never replaces or removes the owner's second factor.
type StepUp uint8

// The step-ups.
const (
	// StepUpNone: the session began within RecentSignIn, and with two
	// factors when the account has a second factor.
	StepUpNone StepUp = iota
	// StepUpPassword: the account has no second factor and the session
	// is older: its password.
	StepUpPassword
	// StepUpCode: the account has one-time codes: a current code or a
	// recovery code (a password alone never suffices).
	StepUpCode
	// StepUpPasskey: the account's only second factor is a passkey: a
	// passkey sign-in within RecentSignIn, as nothing else proves it.
	StepUpPasskey
	// StepUpSignIn: the account has neither a second factor nor a
	// password (it signs in through providers) and the session is
	// older: a sign-in within RecentSignIn.
	StepUpSignIn
)

// StepUpOf is what a change of the session's account needs now.
func (s *Service) StepUpOf(sess *gate.Session) StepUp {
	recent := s.Clock.Now().Sub(sess.Issued) <= RecentSignIn
	switch {
	case !s.guardedByFactor(sess.Account):
		switch {
		case recent:
			return StepUpNone
		case !sess.Account.HasPassword():
			return StepUpSignIn
		}
		return StepUpPassword
	case recent && sess.Factors >= 2 && sess.Method != session.MethodTrusted:
		// a trusted browser's second factor was not shown this time
		return StepUpNone
	case s.TOTP.Has(sess.User):
		return StepUpCode
	}
	return StepUpPasskey
}

// guardedByFactor reports whether a change of the account's sign-in
// methods must be proved with a second factor: the account has one
// (HasFactor), or a passkeys record that does not open, which may hold
// one.
func (s *Service) guardedByFactor(acct *account.Account) bool {
	if s.HasFactor(acct) {
		return true
	}
	if s.Passkeys == nil {
		return false
	}
	_, _, err := s.Passkeys.Of(acct.Name)
	return err != nil
}

// Proof is what a request offers for a step-up: the password, or a
// current code (the form's current_code).
type Proof struct {
	Password, Code string
}

// ErrEnrolOnly refuses a change other than adding a second factor to a
// session that may only enrol one.
var ErrEnrolOnly = refuse(http.StatusForbidden, "this session may only set up a second factor; sign in with it to change anything else")

// AllowChange lets a change of the account's sign-in methods through
// under the step-up policy: 403 with what is missing otherwise, the
// code's own refusal (wrong, throttled) for a refused code. A session
// that may only enrol may only add.
func (s *Service) AllowChange(ctx context.Context, sess *gate.Session, adds bool, proof Proof, c Client) error {
	if !adds && s.MustEnrol(sess) {
		return ErrEnrolOnly
	}
	switch s.StepUpOf(sess) {
	case StepUpNone:
		return nil
	case StepUpPassword:
		return s.checkPassword(ctx, sess, proof.Password, c)
	case StepUpCode:
		if proof.Code == "" {
			return refuse(http.StatusForbidden, "enter a current code from your authenticator app (or a recovery code) to change how you sign in")
		}
		if _, err := s.CheckCode(ctx, sess.User, proof.Code, c.IP, nil); err != nil {
			return s.codeFailed(sess.User, c.IP, http.StatusForbidden, err)
		}
		return nil
	case StepUpSignIn:
		return refuse(http.StatusForbidden, "sign in again to change how you sign in (a sign-in counts for 10 minutes)")
	}
	return refuse(http.StatusForbidden, "sign in again with your passkey to change how you sign in (a passkey sign-in counts for 10 minutes)")
}

// checkPassword checks the account's password for a change of an
// account without a second factor, under the login throttle.
func (s *Service) checkPassword(ctx context.Context, sess *gate.Session, password string, c Client) error {
	const msg = "enter your password to change how you sign in (you signed in more than 10 minutes ago)"
	if password == "" || len(password) > web.MaxFieldLen {
		return refuse(http.StatusForbidden, msg)
	}
	place, _, err := s.Guard.Enter(ctx, s.guardLogin(c.IP, sess.User, nil), s.Clock.Now())
	if err != nil {
		return refuse(http.StatusTooManyRequests, "too many attempts; try again later")
	}
	acct, reason, err := s.Accounts.Check(sess.User, password)
	place.Leave(reason != "")
	if err != nil || acct == nil || acct.ID != sess.Account.ID {
		return refuse(http.StatusForbidden, msg)
	}
	return nil
}

// AppendField appends the form field the step-up asks for, for the
// input id (escaped here): the password, a current code (named
// current_code), a line that says to sign in again with a passkey, or
// nothing.
func (k StepUp) AppendField(b []byte, id string) []byte {
	switch k {
	case StepUpPassword:
		b = web.AppendText(append(b, `<label for="`...), id)
		b = append(b, `" class="meta">Password (you signed in more than 10 minutes ago)</label><input id="`...)
		b = web.AppendText(b, id)
		return append(b, `" name="password" type="password" autocomplete="current-password" required>`...)
	case StepUpCode:
		b = web.AppendText(append(b, `<label for="`...), id)
		b = append(b, `" class="meta">Current code from your authenticator app, or a recovery code</label><input id="`...)
		b = web.AppendText(b, id)
		return append(b, `" name="current_code" type="text" autocomplete="one-time-code" maxlength="32" required>`...)
	case StepUpPasskey:
		return append(b, `<p class="meta">To change this, sign in again with your passkey first.</p>`...)
	case StepUpSignIn:
		return append(b, `<p class="meta">To change this, sign in again first.</p>`...)
	}
	return b
}

// Restart ends the session (and, with everywhere, every other of the
// account) and starts one of two factors for this browser: a new factor
// is a new sign-in.
func (s *Service) Restart(ctx context.Context, h http.Header, sess *gate.Session, c Client, everywhere bool) {
	ended := sess.ID[:]
	if everywhere {
		s.Gate.Shared.SignOutEverywhere(ctx, store.AccountID(sess.Account.ID))
		ended = nil
	} else {
		s.Gate.Shared.Revoke(ctx, sess.ID, sess.Expires)
	}
	if s.Ended != nil {
		s.Ended(sess.User, ended)
	}
	restarted := gate.Client{IP: c.IP, UserAgent: c.UserAgent, Known: s.Gate.KnownDevice(ctx, c.Wire, sess.User), Link: sess.Link}
	if sess.Link != nil {
		restarted.Via = sess.Link.Provider
	}
	s.Gate.Start(ctx, h, c.Wire, sess.Account, restarted, 2, sess.Method)
}
