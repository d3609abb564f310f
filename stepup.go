package miniapp

import (
	"net/http"

	"github.com/caddy-miniapp/miniapp/internal/account"
	"github.com/caddy-miniapp/miniapp/internal/web"
)

// stepUp is what a change of the account's sign-in methods (adding or
// deleting a passkey, setting up, replacing or turning off one-time
// codes, new recovery codes) needs besides a signed-in session of the
// owner: one policy for every such change, so that a stolen password or
// session never replaces or removes the owner's second factor.
type stepUp uint8

const (
	// stepUpNone: the session began within recentSignIn, and with two
	// factors when the account has a second factor.
	stepUpNone stepUp = iota
	// stepUpPassword: the account has no second factor and the session
	// is older: its password.
	stepUpPassword
	// stepUpCode: the account has one-time codes: a current code or a
	// recovery code (a password alone never suffices).
	stepUpCode
	// stepUpPasskey: the account's only second factor is a passkey: a
	// passkey sign-in within recentSignIn, as nothing else proves it.
	stepUpPasskey
)

// stepUpOf is what a change of the session's account needs now.
func (h *Handler) stepUpOf(sess *signedIn) stepUp {
	recent := h.clock.Now().Sub(sess.Issued) <= recentSignIn
	switch {
	case !h.guardedByFactor(sess.acct):
		if recent {
			return stepUpNone
		}
		return stepUpPassword
	case recent && sess.Factors >= 2:
		return stepUpNone
	case h.hasTOTP(sess.User):
		return stepUpCode
	}
	return stepUpPasskey
}

// guardedByFactor reports whether a change of the account's sign-in
// methods must be proved with a second factor: the account has one
// (hasFactor), or a passkeys record that does not open, which may hold
// one.
func (h *Handler) guardedByFactor(acct *account.Account) bool {
	if h.hasFactor(acct) {
		return true
	}
	if !h.passkeysOn() {
		return false
	}
	_, _, err := h.passkeysOf(acct.Name)
	return err != nil
}

// stepUpProof is what a request offers for a step-up: the password,
// or a current code (the form's current_code).
type stepUpProof struct {
	password, code string
}

// errEnrolOnly refuses a change other than adding a second factor to a
// session that may only enrol one.
func errEnrolOnly() error {
	return web.Reject(http.StatusForbidden, "this session may only set up a second factor; sign in with it to change anything else")
}

// allowChange lets a change of the account's sign-in methods through
// under the step-up policy: 403 with what is missing otherwise, the
// code's own answer (wrong, throttled) for a refused code. A session
// that may only enrol may only add.
func (h *Handler) allowChange(w http.ResponseWriter, r *http.Request, sess *signedIn, adds bool, proof stepUpProof) error {
	if !adds && h.mustEnrol(sess) {
		return errEnrolOnly()
	}
	switch h.stepUpOf(sess) {
	case stepUpNone:
		return nil
	case stepUpPassword:
		return h.checkStepUpPassword(r, sess, proof.password)
	case stepUpCode:
		if proof.code == "" {
			return web.Reject(http.StatusForbidden, "enter a current code from your authenticator app (or a recovery code) to change how you sign in")
		}
		if _, err := h.checkCode(r.Context(), loginInput{name: sess.User, ip: web.ClientIP(r), code: proof.code}, sess.User); err != nil {
			return h.codeFailed(w, r, sess.User, http.StatusForbidden, err)
		}
		return nil
	}
	return web.Reject(http.StatusForbidden, "sign in again with your passkey to change how you sign in (a passkey sign-in counts for 10 minutes)")
}

// checkStepUpPassword checks the account's password for a change of an
// account without a second factor, under the login throttle.
func (h *Handler) checkStepUpPassword(r *http.Request, sess *signedIn, password string) error {
	const msg = "enter your password to change how you sign in (you signed in more than 10 minutes ago)"
	if password == "" || len(password) > web.MaxFieldLen {
		return web.Reject(http.StatusForbidden, msg)
	}
	in := loginInput{name: sess.User, ip: web.ClientIP(r)}
	place, _, err := h.guard.Enter(r.Context(), h.guardLogin(in), h.clock.Now())
	if err != nil {
		return web.Reject(http.StatusTooManyRequests, "too many attempts; try again later")
	}
	acct, reason, err := h.accounts.Check(sess.User, password)
	place.Leave(reason != "")
	if err != nil || acct == nil || acct.ID != sess.acct.ID {
		return web.Reject(http.StatusForbidden, msg)
	}
	return nil
}

// appendStepUpField appends the form field a change asks for, for the
// input id (escaped here): the password, a current code (named current_code), a line
// that says to sign in again with a passkey, or nothing.
func appendStepUpField(b []byte, kind stepUp, id string) []byte {
	switch kind {
	case stepUpPassword:
		b = web.AppendText(append(b, `<label for="`...), id)
		b = append(b, `" class="meta">Password (you signed in more than 10 minutes ago)</label><input id="`...)
		b = web.AppendText(b, id)
		return append(b, `" name="password" type="password" autocomplete="current-password" required>`...)
	case stepUpCode:
		b = web.AppendText(append(b, `<label for="`...), id)
		b = append(b, `" class="meta">Current code from your authenticator app, or a recovery code</label><input id="`...)
		b = web.AppendText(b, id)
		return append(b, `" name="current_code" type="text" autocomplete="one-time-code" maxlength="32" required>`...)
	case stepUpPasskey:
		return append(b, `<p class="meta">To change this, sign in again with your passkey first.</p>`...)
	}
	return b
}
