package miniapp

import (
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"html/template"
	"image/png"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/records"

	"github.com/caddy-miniapp/miniapp/internal/account"
	"github.com/caddy-miniapp/miniapp/internal/session"
	"github.com/caddy-miniapp/miniapp/internal/web"
	"github.com/caddy-miniapp/miniapp/store"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/pquerna/otp"
	"go.uber.org/zap"
)

// totpPath is the page and endpoint where a signed-in user sets up,
// replaces and removes one-time codes.
const totpPath = "/profile/totp"

// The second_factor policies.
const (
	factorOptional = "optional"
	factorRequired = "required"
)

const (
	// recentSignIn is how recent a sign-in must be to change the
	// account's sign-in methods without a further proof (see stepUp): a
	// stolen session must not enrol its own factor and lock the owner
	// out.
	recentSignIn = 10 * time.Minute
	// enrollmentLifetime bounds a setup between its secret and the
	// first code.
	enrollmentLifetime = 10 * time.Minute
	// pendingLifetime bounds a sign-in between its password and its code.
	pendingLifetime = 5 * time.Minute
	// maxCodeFailures is how many wrong codes an account may have in
	// codeWindow, and a pending sign-in in its lifetime.
	maxCodeFailures = 5
	codeWindow      = time.Minute
)

// factorKey names the store record of the user's TOTP factor. The factor
// belongs to the realm and the user name, not to the password hash: a
// new password keeps it.
func factorKey(user string) string { return "totp:" + user }

// Why a code could not be checked.
var (
	errFactorUnreadable = errors.New("the second factor's record does not open (edited in the store, or sealed with a key no longer configured)")
	errNoFactor         = errors.New("no second factor")
)

// codeThrottled refuses codes for an account until its window ends.
type codeThrottled struct{ wait time.Duration }

func (e codeThrottled) Error() string { return "too many wrong codes" }

// factorOf returns the user's TOTP factor as this node holds it, nil
// when the user has none. A record that does not open is an error: the
// factor stays on until an operator resets it.
func (h *Handler) factorOf(user string) (*account.TOTP, []byte, error) {
	sealed := h.shared.Record(factorKey(user))
	f, err := h.openFactor(user, sealed)
	return f, sealed, err
}

// openFactor opens a sealed factor record of the user; nil for none.
func (h *Handler) openFactor(user string, sealed []byte) (*account.TOTP, error) {
	if sealed == nil {
		return nil, nil
	}
	var f account.TOTP
	if err := h.records.Open(factorKey(user), sealed, &f); err != nil || f.Secret == "" {
		return nil, errFactorUnreadable
	}
	return &f, nil
}

// hasTOTP reports whether the user has one-time codes; a record that
// does not open counts.
func (h *Handler) hasTOTP(user string) bool {
	return h.shared.Record(factorKey(user)) != nil
}

// hasFactor reports whether the account has a second factor: one-time
// codes, or a passkey of the account as it is configured now that
// verifies its user (one that does not is no second factor, and a user
// must not be held to it).
func (h *Handler) hasFactor(acct *account.Account) bool {
	if h.hasTOTP(acct.Name) {
		return true
	}
	if !h.passkeysOn() {
		return false
	}
	keys, _, err := h.passkeysOf(acct.Name)
	return err == nil && slices.ContainsFunc(keys, func(k account.Passkey) bool { return k.UserVerified && k.Account == acct.ID.Tag() })
}

// factorStatus is the second factor as the profile and the admin API
// show it.
type factorStatus struct {
	// TOTP is whether the user has one-time codes.
	TOTP bool `json:"totp"`
	// RecoveryCodesLeft is how many unused recovery codes the user has.
	RecoveryCodesLeft int `json:"recovery_codes_left"`
}

// statusOf is the user's second factor status.
func (h *Handler) statusOf(user string) factorStatus {
	f, sealed, _ := h.factorOf(user)
	if f == nil {
		return factorStatus{TOTP: sealed != nil}
	}
	return factorStatus{TOTP: true, RecoveryCodesLeft: len(f.Recovery)}
}

// swapFactor stores the factor made by change from the user's current
// one (nil: none) in place of that one (see swapRecord). A record that
// does not open is errFactorUnreadable (an operator's reset removes it
// through resetRecord).
func (h *Handler) swapFactor(ctx context.Context, user string, change func(*account.TOTP) (*account.TOTP, error)) error {
	key := factorKey(user)
	return h.records.Swap(ctx, key, func(sealed []byte) ([]byte, error) {
		f, err := h.openFactor(user, sealed)
		if err != nil {
			return nil, err
		}
		next, err := change(f)
		if err != nil || next == nil {
			return nil, err
		}
		return h.records.Seal(key, next), nil
	})
}

// useCode checks a code or recovery code of the user's factor and
// records its use in the store, so that it works once on every node (a
// swap from the record it was checked against). Attempts are counted per
// account in the store before the check, so that neither spreading
// guesses over clients or nodes nor sending many at once helps; a right
// code takes its attempt back.
func (h *Handler) useCode(ctx context.Context, user, code string) (account.CodeKind, error) {
	attempts := "code:" + user
	n, until, err := h.shared.Strike(ctx, attempts, 1, codeWindow)
	if err != nil {
		return "", records.StoreFailed{Err: err}
	}
	if n > maxCodeFailures {
		return "", codeThrottled{until.Sub(h.clock.Now())}
	}
	var kind account.CodeKind
	err = h.swapFactor(ctx, user, func(f *account.TOTP) (*account.TOTP, error) {
		if f == nil {
			return nil, errNoFactor
		}
		next, k, err := f.Use(code, h.clock.Now())
		kind = k
		return next, err
	})
	if !wrongCode(err) {
		if _, _, serr := h.shared.Strike(ctx, attempts, -1, codeWindow); serr != nil && err == nil {
			h.logger.Warn("taking back a right code's attempt", zap.String("user", user), zap.Error(serr))
		}
	}
	if err == nil && kind == account.ByRecovery {
		h.logger.Info("recovery code used", zap.String("user", user))
	}
	return kind, err
}

// wrongCode reports whether err refuses the code itself (wrong, or used
// before), rather than the check.
func wrongCode(err error) bool {
	return errors.Is(err, account.ErrWrongCode) || errors.Is(err, account.ErrReplayed)
}

// checkCode is useCode under the client's login throttle: a wrong code
// counts as a failed login of the client.
func (h *Handler) checkCode(ctx context.Context, in loginInput, user string) (account.CodeKind, error) {
	place, wait, err := h.guard.EnterCheck(h.guardLogin(in), h.clock.Now())
	if err != nil {
		return "", codeThrottled{wait}
	}
	kind, err := h.useCode(ctx, user, in.code)
	place.Leave(wrongCode(err))
	return kind, err
}

// codeFailed answers a code that was refused: status (401 at sign-in,
// 400 on the profile) for a wrong or used code, 429 when the account or
// client used up its tries, 503 when the store cannot say whether the
// code was used. Counted and logged with the reason, never the code.
func (h *Handler) codeFailed(w http.ResponseWriter, r *http.Request, user string, status int, err error) error {
	reason, msg := "wrong_code", "invalid code"
	var throttled codeThrottled
	var down records.StoreFailed
	switch {
	case errors.Is(err, account.ErrReplayed):
		reason = "replayed"
	case errors.As(err, &throttled):
		reason, status, msg = "throttled", http.StatusTooManyRequests, "too many wrong codes; try again later"
		w.Header().Set("Retry-After", strconv.Itoa(max(1, int(math.Ceil(throttled.wait.Seconds())))))
	case errors.As(err, &down):
		reason, status, msg = "store", http.StatusServiceUnavailable, "the code cannot be checked now; try again shortly"
		w.Header().Set("Retry-After", "5")
		h.logger.Error("checking a second factor", zap.String("user", user), zap.Error(down.Err))
	case errors.Is(err, errFactorUnreadable):
		reason, status, msg = "unreadable", http.StatusForbidden, "this second factor cannot be read; ask an operator to reset it"
		h.logger.Error("a second factor's record does not open; reset it with caddy miniapp totp-reset", zap.String("user", user))
	case errors.Is(err, errNoFactor):
		reason, msg = "no_factor", "no second factor is set up"
	}
	h.count(metrics.secondFactor, "failure", reason)
	h.logger.Warn("second factor refused", zap.String("user", user), zap.String("client_ip", web.ClientIP(r)), zap.String("reason", reason))
	return web.Reject(status, msg)
}

// A pending sign-in is a password accepted for an account with a second
// factor: a cookie of its own (sealed for its purpose, host-only, five
// minutes, bound to the account and its sign-out counter) carries it to
// the code step.

// pendingCookieName is the pending sign-in's cookie name.
func (h *Handler) pendingCookieName(r *http.Request) string {
	if web.Secure(r) {
		return h.hostCookie + "_pending"
	}
	return h.CookieName + "_pending"
}

// setPending starts the code step of a sign-in of acct.
func (h *Handler) setPending(w http.ResponseWriter, r *http.Request, acct *account.Account) {
	p := session.New(acct.Name, acct.ID.Tag(), h.shared.Counter(r.Context(), store.AccountID(acct.ID)), h.clock.Now(), pendingLifetime)
	h.pendingCookie(w, r, h.keys.Seal(session.PurposePending, p, h.pendingCookieName(r), web.Host(r)), int(pendingLifetime.Seconds()))
}

// clearPending ends the code step.
func (h *Handler) clearPending(w http.ResponseWriter, r *http.Request) {
	h.pendingCookie(w, r, "", -1)
}

func (h *Handler) pendingCookie(w http.ResponseWriter, r *http.Request, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: h.pendingCookieName(r), Value: value, Path: "/", MaxAge: maxAge,
		Secure: web.Secure(r), HttpOnly: true, SameSite: http.SameSiteStrictMode})
}

// pendingOf returns the request's pending sign-in and its account, or
// nil: a cookie that is forged, expired, of a changed or removed account,
// or from before the account's last sign out everywhere is none.
func (h *Handler) pendingOf(r *http.Request) (*session.Session, *account.Account) {
	name := h.pendingCookieName(r)
	value, ok := web.CookieValue(r, name)
	if !ok {
		return nil, nil
	}
	p, err := h.keys.Open(session.PurposePending, value, name, web.Host(r))
	if err != nil || !h.clock.Now().Truncate(time.Second).Before(p.Expires) || h.shared.RevokedID(p.ID, p.Expires) {
		return nil, nil
	}
	acct, known := h.accounts.Lookup(p.User)
	if !known || p.Account != acct.ID.Tag() || p.Counter < h.shared.Counter(r.Context(), store.AccountID(acct.ID)) {
		return nil, nil
	}
	return p, acct
}

// askCode answers a right password of an account with a second factor:
// no session yet, a pending sign-in, and the code step (a browser is sent
// to the code form, other clients are told what is required).
func (h *Handler) askCode(w http.ResponseWriter, r *http.Request, f web.Format, acct *account.Account, in loginInput) error {
	h.setPending(w, r, acct)
	h.logger.Info("password accepted; waiting for the second factor", zap.String("user", acct.Name), zap.String("client_ip", in.ip))
	w.Header().Set("Cache-Control", "no-store")
	if f == web.HTML {
		to := "/login?step=code"
		if in.next != "" {
			to += "&next=" + url.QueryEscape(in.next)
		}
		web.Redirect(w, r, to)
		return nil
	}
	return h.site.JSON(w, r, http.StatusUnauthorized, struct {
		Error        string   `json:"error"`
		SecondFactor []string `json:"second_factor"`
	}{"second factor required", []string{"totp"}})
}

// finishCode is the code step of a pending sign-in: a right code starts
// the session with two factors and ends the pending sign-in on every
// node; a wrong one leaves it usable until it expires or has had
// maxCodeFailures.
func (h *Handler) finishCode(w http.ResponseWriter, r *http.Request, f web.Format, in loginInput) error {
	p, acct := in.pending, in.pendingAcct
	attempts := "pending:" + hex.EncodeToString(p.ID[:])
	n, _, err := h.shared.Strike(r.Context(), attempts, 1, pendingLifetime)
	if err != nil {
		return h.codeFailed(w, r, acct.Name, http.StatusUnauthorized, records.StoreFailed{Err: err})
	}
	if n > maxCodeFailures {
		h.clearPending(w, r)
		return web.Reject(http.StatusUnauthorized, "too many wrong codes, or signed in already; sign in again")
	}
	kind, err := h.checkCode(r.Context(), in, acct.Name)
	switch {
	case err == nil:
		// used up: a copy of the cookie signs nobody in, here at once (and
		// on every node with Redis), on every node within the store's
		// sync interval (revoked like a session)
		_, _, _ = h.shared.Strike(r.Context(), attempts, maxCodeFailures, pendingLifetime)
		h.shared.Revoke(r.Context(), p.ID, p.Expires)
	case !wrongCode(err):
		_, _, _ = h.shared.Strike(r.Context(), attempts, -1, pendingLifetime)
	}
	if err != nil {
		return h.codeStepFailed(w, r, f, acct.Name, in, err)
	}
	h.clearPending(w, r)
	return h.signIn(w, r, f, acct, in, kind)
}

// codeStepFailed answers a refused code at sign-in: the code form again
// for a browser, the reason for other clients.
func (h *Handler) codeStepFailed(w http.ResponseWriter, r *http.Request, f web.Format, user string, in loginInput, err error) error {
	err = h.codeFailed(w, r, user, http.StatusUnauthorized, err)
	herr, _ := errors.AsType[caddyhttp.HandlerError](err)
	if f == web.HTML && !web.HasErrorRoutes(r) {
		return h.site.Render(w, r, herr.StatusCode, "login.html", web.PageData{Title: "Enter your code", Error: herr.Err.Error(), Next: in.next, CodeStep: true})
	}
	return err
}

// mustEnrol reports whether the session may only set up a second factor:
// second_factor is required and the session began with a password alone.
func (h *Handler) mustEnrol(sess *signedIn) bool {
	return h.SecondFactor == factorRequired && sess.Factors < 2
}

// enrolPaths are the paths a session that must enrol may use.
var enrolPaths = map[string]bool{totpPath: true, passkeysPath: true, "/login": true, loginPasskeyPath: true, "/logout": true, "/hello": true, authPath: true}

// enrolFirst answers a request of a session that may only set up a
// second factor: the profile and protected paths send browsers to the
// setup page (or, when the account has a factor already, to sign in
// again with it) and refuse other clients; the rest goes on as for an
// anonymous request.
func (h *Handler) enrolFirst(w http.ResponseWriter, r *http.Request, sess *signedIn, next func() error) error {
	_, own := routes[r.URL.Path]
	if !own && (len(h.protected) == 0 || !h.protected.Match(r)) {
		setPlaceholders(r, nil)
		return next()
	}
	f := web.Read(r).Format
	var err error
	switch {
	case h.hasFactor(sess.acct):
		// a session from before the factor: sign in again with it
		err = h.signInFirst(w, r, f, nil)
	case f == web.HTML:
		web.Redirect(w, r, totpPath)
	default:
		err = web.Reject(http.StatusForbidden, "second factor enrollment required")
	}
	if err != nil {
		return h.site.Fail(w, r, f, err)
	}
	return nil
}

// enrollment is a factor being set up: sealed for its purpose into the
// form's hidden field, bound to the user and the session, for ten
// minutes. Nothing is stored until the first code confirms it.
type enrollment struct {
	Secret  string `json:"secret"`
	Session string `json:"session"`
	Expires int64  `json:"expires"`
	// SteppedUp is whether the setup began after the step-up policy let
	// it through (a JSON begin): its confirmation needs no second proof,
	// which a code used once could not give again.
	SteppedUp bool `json:"stepped_up,omitempty"`
}

// sealEnrollment seals a new secret's setup for the session.
func (h *Handler) sealEnrollment(sess *signedIn, secret string, steppedUp bool) string {
	data, _ := json.Marshal(enrollment{Secret: secret, Session: hex.EncodeToString(sess.ID[:]),
		Expires: h.clock.Now().Add(enrollmentLifetime).Unix(), SteppedUp: steppedUp})
	return h.keys.SealData(session.PurposeEnrollment, data, factorKey(sess.User))
}

// openEnrollment opens the session's setup, refusing another session's
// or an expired one.
func (h *Handler) openEnrollment(sess *signedIn, value string) (enrollment, error) {
	data, _, err := h.keys.OpenData(session.PurposeEnrollment, value, factorKey(sess.User))
	var e enrollment
	if err != nil || json.Unmarshal(data, &e) != nil || e.Session != hex.EncodeToString(sess.ID[:]) || h.clock.Now().Unix() >= e.Expires {
		return e, web.Reject(http.StatusBadRequest, "the setup has expired or is not this session's; start again")
	}
	return e, nil
}

// issuer is the name authenticator apps show for the codes: totp_issuer,
// or the site's host.
func (h *Handler) issuer(r *http.Request) string {
	return cmp.Or(h.TOTPIssuer, web.Host(r), "miniapp")
}

// setup is a new secret's setup as the JSON answer gives it, and the
// page shows it (with its QR code).
type setup struct {
	Secret     string `json:"secret"`
	URI        string `json:"uri"`
	Enrollment string `json:"enrollment"`
	qr         string
}

// newSetup makes a new secret and its setup for the session; steppedUp
// says the step-up policy let it through already.
func (h *Handler) newSetup(r *http.Request, sess *signedIn, steppedUp bool) (setup, error) {
	key, err := account.NewTOTPKey(h.issuer(r), sess.User)
	if err != nil {
		return setup{}, err
	}
	return setupOf(key, h.sealEnrollment(sess, key.Secret(), steppedUp))
}

// setupOf is the setup of a key with its sealed enrollment, and its QR
// code.
func setupOf(key *otp.Key, enrollment string) (setup, error) {
	img, err := key.Image(240, 240)
	if err != nil {
		return setup{}, err
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return setup{}, err
	}
	return setup{Secret: key.Secret(), URI: key.URL(), Enrollment: enrollment,
		qr: "data:image/png;base64," + base64.StdEncoding.EncodeToString(buf.Bytes())}, nil
}

// totp is the second factor's page (GET) and endpoint (POST): begin a
// setup (no code), confirm it (enrollment and code), or with a current
// code `action=disable` or `action=recovery-codes`.
func (h *Handler) totp(w http.ResponseWriter, r *http.Request, f web.Format, sess *signedIn) error {
	if err := web.Allow(w, r, "GET, HEAD, POST", http.MethodGet, http.MethodHead, http.MethodPost); err != nil {
		return err
	}
	if sess == nil {
		return h.signInFirst(w, r, f, nil)
	}
	w.Header().Set("Cache-Control", "no-store")
	if r.Method != http.MethodPost {
		return h.totpPage(w, r, sess, "")
	}
	if err := h.sameOrigin(r); err != nil {
		return err
	}
	in, err := web.ReadFields(w, r, h.MaxBodySize, "action", "enrollment", "code", "current_code", "password", "end_other_sessions")
	if err != nil {
		return err
	}
	for _, code := range []string{in["code"], in["current_code"]} {
		if err := account.CheckCode(code); err != nil {
			return web.Reject(http.StatusBadRequest, err.Error())
		}
	}
	proof := stepUpProof{password: in["password"], code: in["current_code"]}
	switch in["action"] {
	case "":
		if in["code"] == "" {
			return h.beginTOTP(w, r, f, sess, proof)
		}
		return h.confirmTOTP(w, r, f, sess, in, proof)
	case "disable", "recovery-codes":
		// the code they need is the step-up; a session that may only
		// enrol may change nothing else
		if h.mustEnrol(sess) {
			return errEnrolOnly()
		}
		if in["action"] == "disable" {
			return h.disableTOTP(w, r, f, sess, in["code"])
		}
		return h.newRecoveryCodes(w, r, f, sess, in["code"])
	}
	return web.Reject(http.StatusBadRequest, "action must be disable or recovery-codes, or none")
}

// beginTOTP starts a setup: a new secret, stored nowhere yet.
func (h *Handler) beginTOTP(w http.ResponseWriter, r *http.Request, f web.Format, sess *signedIn, proof stepUpProof) error {
	if err := h.allowChange(w, r, sess, true, proof); err != nil {
		return err
	}
	if f != web.JSON {
		return h.totpPage(w, r, sess, "")
	}
	s, err := h.newSetup(r, sess, true)
	if err != nil {
		return h.site.Internal(w, r, err)
	}
	return h.site.JSON(w, r, http.StatusOK, s)
}

// confirmTOTP stores the factor being set up once its first code is
// right, with new recovery codes shown once, and starts a new session of
// two factors for this browser (ending the others when asked).
func (h *Handler) confirmTOTP(w http.ResponseWriter, r *http.Request, f web.Format, sess *signedIn, in web.Fields, proof stepUpProof) error {
	e, err := h.openEnrollment(sess, in["enrollment"])
	if err != nil {
		return err
	}
	if !e.SteppedUp {
		if err := h.allowChange(w, r, sess, true, proof); err != nil {
			return err
		}
	}
	secret := e.Secret
	step, ok := account.MatchStep(secret, in["code"], h.clock.Now())
	if !ok {
		h.count(metrics.secondFactor, "failure", "wrong_code")
		const msg = "wrong code; nothing was stored (check the time of your device)"
		if f == web.HTML && !web.HasErrorRoutes(r) {
			// the same key again: the one the app has now
			return h.setupAgain(w, r, sess, secret, in["enrollment"], msg)
		}
		return web.Reject(http.StatusBadRequest, msg)
	}
	factor := &account.TOTP{Secret: secret, LastStep: step, Created: h.clock.Now().Unix()}
	codes := factor.NewRecovery()
	replaced := false
	err = h.swapFactor(r.Context(), sess.User, func(old *account.TOTP) (*account.TOTP, error) {
		replaced = old != nil
		return factor, nil
	})
	if err != nil {
		return h.codeFailed(w, r, sess.User, http.StatusBadRequest, err)
	}
	everywhere := in["end_other_sessions"] == "1"
	h.logger.Info("second factor added", zap.String("user", sess.User), zap.String("client_ip", web.ClientIP(r)),
		zap.Bool("replaced", replaced), zap.Bool("other_sessions_ended", everywhere))
	h.restartSession(w, r, sess, everywhere)
	return h.showRecoveryCodes(w, r, f, codes)
}

// restartSession ends the session (and, with everywhere, every other of
// the account) and starts one of two factors for this browser: a new
// factor is a new sign-in.
func (h *Handler) restartSession(w http.ResponseWriter, r *http.Request, sess *signedIn, everywhere bool) {
	acct := store.AccountID(sess.acct.ID)
	if everywhere {
		h.shared.SignOutEverywhere(r.Context(), acct)
	} else {
		h.shared.Revoke(r.Context(), sess.ID, sess.Expires)
	}
	h.startSession(r.Context(), w, r, sess.acct, loginInput{ip: web.ClientIP(r), device: h.knownDevice(r, sess.User)}, 2)
}

// showRecoveryCodes answers with recovery codes, shown this once.
func (h *Handler) showRecoveryCodes(w http.ResponseWriter, r *http.Request, f web.Format, codes []string) error {
	w.Header().Set("Cache-Control", "no-store")
	if f == web.JSON {
		return h.site.JSON(w, r, http.StatusOK, map[string][]string{"recovery_codes": codes})
	}
	return h.renderTOTP(w, r, http.StatusOK, web.PageData{Title: "Recovery codes", RecoveryCodes: codes})
}

// disableTOTP removes the factor, given a current code or a recovery
// code.
func (h *Handler) disableTOTP(w http.ResponseWriter, r *http.Request, f web.Format, sess *signedIn, code string) error {
	if code == "" {
		return web.Reject(http.StatusBadRequest, "code is required")
	}
	if _, err := h.checkCode(r.Context(), loginInput{name: sess.User, ip: web.ClientIP(r), code: code}, sess.User); err != nil {
		return h.codeFailed(w, r, sess.User, http.StatusBadRequest, err)
	}
	if err := h.swapFactor(r.Context(), sess.User, func(*account.TOTP) (*account.TOTP, error) { return nil, nil }); err != nil {
		return h.codeFailed(w, r, sess.User, http.StatusBadRequest, err)
	}
	h.logger.Info("second factor removed", zap.String("user", sess.User), zap.String("client_ip", web.ClientIP(r)), zap.String("by", "user"))
	if f == web.JSON {
		return h.site.JSON(w, r, http.StatusOK, map[string]factorStatus{"second_factor": h.statusOf(sess.User)})
	}
	web.Redirect(w, r, totpPath)
	return nil
}

// newRecoveryCodes replaces the recovery codes, given a current code.
func (h *Handler) newRecoveryCodes(w http.ResponseWriter, r *http.Request, f web.Format, sess *signedIn, code string) error {
	if code == "" {
		return web.Reject(http.StatusBadRequest, "code is required")
	}
	if _, err := h.checkCode(r.Context(), loginInput{name: sess.User, ip: web.ClientIP(r), code: code}, sess.User); err != nil {
		return h.codeFailed(w, r, sess.User, http.StatusBadRequest, err)
	}
	var codes []string
	err := h.swapFactor(r.Context(), sess.User, func(old *account.TOTP) (*account.TOTP, error) {
		if old == nil {
			return nil, errNoFactor
		}
		next := *old
		codes = next.NewRecovery()
		return &next, nil
	})
	if err != nil {
		return h.codeFailed(w, r, sess.User, http.StatusBadRequest, err)
	}
	h.logger.Info("recovery codes replaced", zap.String("user", sess.User), zap.String("client_ip", web.ClientIP(r)))
	return h.showRecoveryCodes(w, r, f, codes)
}

// totpPage shows the second factor: its state and forms when the user
// has one, else a new setup.
func (h *Handler) totpPage(w http.ResponseWriter, r *http.Request, sess *signedIn, errMsg string) error {
	data := h.totpPageData(sess, errMsg)
	status := h.statusOf(sess.User)
	data.Enrolled, data.Others = status.TOTP, strconv.Itoa(status.RecoveryCodesLeft)
	if !status.TOTP || r.URL.Query().Has("replace") || r.Method == http.MethodPost {
		s, err := h.newSetup(r, sess, false)
		if err != nil {
			return h.site.Internal(w, r, err)
		}
		data.Setup = s.view()
		data.Enrolled = false
	}
	return h.renderTOTP(w, r, http.StatusOK, data)
}

// setupAgain shows the setup page again with the same key, after a wrong
// first code.
func (h *Handler) setupAgain(w http.ResponseWriter, r *http.Request, sess *signedIn, secret, enrollment, msg string) error {
	key, err := account.TOTPKeyOf(h.issuer(r), sess.User, secret)
	if err != nil {
		return h.site.Internal(w, r, err)
	}
	s, err := setupOf(key, enrollment)
	if err != nil {
		return h.site.Internal(w, r, err)
	}
	data := h.totpPageData(sess, msg)
	data.Setup = s.view()
	return h.renderTOTP(w, r, http.StatusBadRequest, data)
}

// totpPageData is the second factor's page for the session: its user,
// the step-up field a change asks for, whether it may only enrol.
func (h *Handler) totpPageData(sess *signedIn, errMsg string) web.PageData {
	kind := h.stepUpOf(sess)
	return web.PageData{Title: "Two-step sign-in", User: sess.User, Error: errMsg, MustEnrol: h.mustEnrol(sess), Passkey: h.passkeysOn(),
		StepUp:        template.HTML(appendStepUpField(nil, kind, "step-up")),
		PasskeyStepUp: template.HTML(appendStepUpField(nil, kind, "passkey-step-up"))}
}

// renderTOTP renders the second factor's page, whose QR code is a data:
// image.
func (h *Handler) renderTOTP(w http.ResponseWriter, r *http.Request, status int, data web.PageData) error {
	w.Header().Set("Content-Security-Policy", strings.Replace(h.site.Policy(), "img-src 'self'", "img-src 'self' data:", 1))
	return h.site.Render(w, r, status, "totp.html", data)
}

// view is the setup as the page shows it, its QR code a PNG made here,
// safe as an image source.
func (s *setup) view() *web.Setup {
	return &web.Setup{Secret: s.Secret, URI: s.URI, Enrollment: s.Enrollment, QR: template.URL(s.qr)}
}
