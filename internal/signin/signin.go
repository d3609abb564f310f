// Package signin is the sign-in state machine: a password, the code
// step of an account with a second factor, a passkey's assertion, and
// the step-up that a change of the sign-in methods needs. Each ends in
// one Outcome (signed in, code needed, refused with why) that the route
// renders; a new session is started through the gate. It knows the
// guard, the accounts, the factors and the gate; not routes, formats or
// pages.
package signin

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/account"
	"github.com/caddy-miniapp/miniapp/internal/gate"
	"github.com/caddy-miniapp/miniapp/internal/guard"
	"github.com/caddy-miniapp/miniapp/internal/idp"
	"github.com/caddy-miniapp/miniapp/internal/passkey"
	"github.com/caddy-miniapp/miniapp/internal/records"
	"github.com/caddy-miniapp/miniapp/internal/session"
	"github.com/caddy-miniapp/miniapp/internal/totp"
	"github.com/caddy-miniapp/miniapp/internal/users"
	"go.uber.org/zap"
)

// Counter counts sign-in events for the metrics: logins by result
// (success, failure, throttled) and second factor checks by result and
// reason.
type Counter interface {
	Login(result string)
	SecondFactor(result, reason string)
}

// Service signs in to a realm.
type Service struct {
	// Realm names the realm in the guard's keys of known devices.
	Realm string
	// Accounts are the handler's accounts.
	Accounts *account.Set
	// Guard gives password checks their place.
	Guard guard.Guard
	// TOTP and Passkeys are the second factors; Passkeys is nil when
	// passkeys are off.
	TOTP     *totp.Service
	Passkeys *passkey.Service
	// Gate starts sessions.
	Gate *gate.Gate
	// Required is second_factor required.
	Required bool
	// Guests is who may sign in through a provider without an account
	// here; nil for no one.
	Guests *idp.Guests
	// Users are the realm's managed accounts.
	Users *users.Service
	// Remember is remember_second_factor: how long a browser trusted
	// for the second factor at its code step skips it; 0 for never.
	Remember time.Duration
	// Clock, Logger and Count are the handler's.
	Clock  *session.Clock
	Logger *zap.Logger
	Count  Counter
	// Ended, when set, hears of sessions a restart ended (session nil:
	// every session of the user), for the apps that signed in through
	// them.
	Ended func(user string, session []byte)
}

// Client is who signs in: where from, with what browser, as the route
// read it.
type Client struct {
	// Wire is the request's cookies and host.
	Wire gate.Wire
	// IP is Caddy's client IP, which honours trusted_proxies.
	IP string
	// UserAgent is the User-Agent header.
	UserAgent string
	// Via names the provider the client signs in through, if any, and
	// Link the account's link to the identity there.
	Via  string
	Link *account.Link
}

// Login is a POST /login, read once: a name and password (and a code,
// for an account with a second factor), or a code alone with a pending
// sign-in.
type Login struct {
	Name, Password, Code string
	// Trust: trust this browser for the second factor (trust_browser=1
	// beside the code).
	Trust bool
	Client
	// Known is the browser's device cookie for the name, or nil.
	Known *session.Session
	// Pending is the pending sign-in that a code alone finishes, with
	// its account; nil for a sign-in with a password.
	Pending        *session.Session
	PendingAccount *account.Account
}

// Outcome is how a sign-in ended: a session, a code needed (with a
// pending sign-in's cookie set), or a refusal.
type Outcome struct {
	// Session is the new session when signed in.
	Session *gate.Session
	// CodeNeeded is a right password (or a passkey that did not verify
	// its user) of an account with one-time codes: the code follows.
	CodeNeeded bool
	// Err is a refusal, a *Refusal.
	Err error
	// Form says which form a browser sees again with Err: the password
	// form (a wrong password) or the code form (a refused code).
	Form Form
}

// Form is the login page's form a refusal shows again.
type Form int

// The forms.
const (
	NoForm Form = iota
	PasswordForm
	CodeForm
)

// Refusal is a refused step: its status, a one-line reason that never
// repeats the input, and how long to wait before trying again (429,
// 503), or 0.
type Refusal struct {
	Status int
	Reason string
	Wait   time.Duration
}

func (r *Refusal) Error() string { return r.Reason }

// RetryAfter is the Retry-After value of the wait, in whole seconds.
func (r *Refusal) RetryAfter() string {
	return strconv.Itoa(max(1, int(math.Ceil(r.Wait.Seconds()))))
}

// refuse is a refusal without a wait.
func refuse(status int, reason string) *Refusal { return &Refusal{Status: status, Reason: reason} }

// guardLogin is the guard's view of a login: the client, and the
// device and account when the browser is a known device of the account.
func (s *Service) guardLogin(ip, name string, known *session.Session) guard.Login {
	login := guard.Login{Client: guard.ClientKey(ip)}
	if known != nil {
		// the slots serve every realm of the process
		login.Device, login.Account = guard.DeviceKey(known.ID), s.Realm+"\x00"+name
	}
	return login
}

// Password signs in with a password: a place from the guard, the
// password from the accounts, the second factor when the account has
// one (its code given, or the code step), a new session.
func (s *Service) Password(ctx context.Context, h http.Header, in Login) Outcome {
	place, wait, err := s.Guard.Enter(ctx, s.guardLogin(in.IP, in.Name, in.Known), s.Clock.Now())
	switch {
	case errors.Is(err, guard.ErrNoSlot):
		return s.tooMany(in, wait, "login refused: too many password checks in progress", "too many logins in progress; try again shortly")
	case errors.Is(err, guard.ErrBusy):
		return s.tooMany(in, wait, "login refused: too many logins from this client in progress", "too many logins from this client in progress; try again shortly")
	case err != nil:
		return s.tooMany(in, wait, "login throttled", err.Error())
	}
	acct, reason, err := s.Accounts.Check(in.Name, in.Password)
	place.Leave(reason != "")
	if err != nil {
		return Outcome{Err: err}
	}
	if acct == nil {
		s.Count.Login("failure")
		s.Logger.Warn("login failed", s.userFields(in.Name, zap.String("client_ip", in.IP), zap.String("reason", reason))...)
		return Outcome{Err: refuse(http.StatusUnauthorized, "invalid username or password"), Form: PasswordForm}
	}
	has, err := s.TOTP.HasNow(ctx, acct.Name)
	if err != nil {
		// whether the account has a second factor cannot be known
		return Outcome{Err: s.codeFailed(acct.Name, in.IP, http.StatusUnauthorized, err)}
	}
	if !has {
		return s.signIn(ctx, h, acct, in.Client, in.Known, 1, session.MethodPassword)
	}
	if in.Code == "" {
		if s.trustedBrowser(in.Wire, acct) {
			return s.signIn(ctx, h, acct, in.Client, in.Known, 2, session.MethodTrusted)
		}
		return s.askCode(ctx, h, acct, in.Client, session.MethodPassword)
	}
	kind, err := s.CheckCode(ctx, acct.Name, in.Code, in.IP, in.Known)
	if err != nil {
		// the password was right: the code alone may follow
		s.Gate.SetPending(ctx, h, in.Wire, acct, session.MethodPassword, nil)
		return Outcome{Err: s.codeFailed(acct.Name, in.IP, http.StatusUnauthorized, err), Form: CodeForm}
	}
	s.Count.SecondFactor("success", string(kind))
	s.trustBrowser(ctx, h, acct, in)
	return s.signIn(ctx, h, acct, in.Client, in.Known, 2, session.MethodPassword)
}

// Code is the code step of a pending sign-in: a right code starts the
// session with two factors and ends the pending sign-in on every node; a
// wrong one leaves it usable until it expires or has had
// totp.MaxFailures.
func (s *Service) Code(ctx context.Context, h http.Header, in Login) Outcome {
	p, acct := in.Pending, in.PendingAccount
	realm := s.TOTP.Records.Realm
	attempts := fmt.Sprintf("pending:%x", p.ID)
	n, _, err := realm.Strike(ctx, attempts, 1, gate.PendingLifetime)
	if err != nil {
		return Outcome{Err: s.codeFailed(acct.Name, in.IP, http.StatusUnauthorized, records.StoreFailed{Err: err})}
	}
	if n > totp.MaxFailures {
		s.Gate.ClearPending(h, in.Wire)
		return Outcome{Err: refuse(http.StatusUnauthorized, "too many wrong codes, or signed in already; sign in again")}
	}
	kind, err := s.CheckCode(ctx, acct.Name, in.Code, in.IP, in.Known)
	switch {
	case err == nil:
		// used up: a copy of the cookie signs nobody in, here at once (and
		// on every node with Redis), on every node within the store's
		// sync interval (revoked like a session)
		_, _, _ = realm.Strike(ctx, attempts, totp.MaxFailures, gate.PendingLifetime)
		realm.Revoke(ctx, p.ID, p.Expires)
	case !totp.WrongCode(err):
		_, _, _ = realm.Strike(ctx, attempts, -1, gate.PendingLifetime)
	}
	if err != nil {
		return Outcome{Err: s.codeFailed(acct.Name, in.IP, http.StatusUnauthorized, err), Form: CodeForm}
	}
	s.Gate.ClearPending(h, in.Wire)
	s.Count.SecondFactor("success", string(kind))
	s.trustBrowser(ctx, h, acct, in)
	if link, _ := gate.Holds(acct, p); link != nil {
		in.Link, in.Via = link, link.Provider
	}
	return s.signIn(ctx, h, acct, in.Client, in.Known, 2, p.Method)
}

// askCode ends a right first factor (method) of an account with a
// second factor: no session yet, a pending sign-in, and the code step.
func (s *Service) askCode(ctx context.Context, h http.Header, acct *account.Account, c Client, method session.Method) Outcome {
	s.Gate.SetPending(ctx, h, c.Wire, acct, method, c.Link)
	s.Logger.Info("first factor accepted; waiting for the second factor", zap.String("user", acct.Name), zap.String("client_ip", c.IP),
		zap.Stringer("method", method))
	return Outcome{CodeNeeded: true}
}

// signIn starts the session of a complete sign-in, counted and logged.
func (s *Service) signIn(ctx context.Context, h http.Header, acct *account.Account, c Client, known *session.Session, factors uint8, method session.Method) Outcome {
	sess := s.Gate.Start(ctx, h, c.Wire, acct, gate.Client{IP: c.IP, UserAgent: c.UserAgent, Known: known, Link: c.Link, Via: c.Via}, factors, method)
	s.Count.Login("success")
	s.Logger.Info("login", zap.String("user", acct.Name), zap.String("client_ip", c.IP), zap.Uint8("factors", factors), zap.Stringer("method", method))
	return Outcome{Session: sess}
}

// tooMany refuses a login with 429 and a wait, counted and logged.
func (s *Service) tooMany(in Login, wait time.Duration, event, reason string) Outcome {
	s.Count.Login("throttled")
	s.Logger.Warn(event, s.userFields(in.Name, zap.String("client_ip", in.IP))...)
	return Outcome{Err: &Refusal{Status: http.StatusTooManyRequests, Reason: reason, Wait: max(wait, time.Nanosecond)}}
}

// userFields are the log fields of a refused login's user name, then
// more: a name that is not a configured user is often a password typed
// in the wrong field, so it is logged as "unknown user" with its length
// alone.
func (s *Service) userFields(name string, more ...zap.Field) []zap.Field {
	if _, known := s.Accounts.Lookup(name); known || name == "" {
		return append([]zap.Field{zap.String("user", name)}, more...)
	}
	return append([]zap.Field{zap.String("user", "unknown user"), zap.Int("user_length", len(name))}, more...)
}

// CheckCode is the user's code, used once (see totp.Service.Use), under
// the client's login throttle: a wrong code counts as a failed login of
// the client.
func (s *Service) CheckCode(ctx context.Context, user, code, ip string, known *session.Session) (totp.CodeKind, error) {
	place, wait, err := s.Guard.EnterCheck(s.guardLogin(ip, user, known), s.Clock.Now())
	if err != nil {
		return "", totp.Throttled{Wait: wait}
	}
	kind, err := s.TOTP.Use(ctx, user, code)
	place.Leave(totp.WrongCode(err))
	return kind, err
}

// codeFailed is the refusal of a code: status (401 at sign-in, 400 on
// the profile, 403 for a step-up) for a wrong or used code, 429 when the
// account or client used up its tries, 503 when the store cannot say
// whether the code was used. Counted and logged with the reason, never
// the code.
func (s *Service) codeFailed(user, ip string, status int, err error) *Refusal {
	reason, out := "wrong_code", refuse(status, "invalid code")
	switch {
	case errors.Is(err, totp.ErrReplayed):
		reason = "replayed"
	case errors.As(err, new(totp.Throttled)):
		throttled, _ := errors.AsType[totp.Throttled](err)
		reason, out = "throttled", &Refusal{Status: http.StatusTooManyRequests, Reason: "too many wrong codes; try again later", Wait: max(throttled.Wait, time.Nanosecond)}
	case errors.As(err, new(records.StoreFailed)):
		down, _ := errors.AsType[records.StoreFailed](err)
		reason, out = "store", &Refusal{Status: http.StatusServiceUnavailable, Reason: "the code cannot be checked now; try again shortly", Wait: 5 * time.Second}
		s.Logger.Error("checking a second factor", zap.String("user", user), zap.Error(down.Err))
	case errors.Is(err, totp.ErrUnreadable):
		reason, out = "unreadable", refuse(http.StatusForbidden, "this second factor cannot be read; ask an operator to reset it")
		s.Logger.Error("a second factor's record does not open; reset it with caddy miniapp totp-reset", zap.String("user", user))
	case errors.Is(err, totp.ErrNoFactor):
		reason, out = "no_factor", refuse(status, "no second factor is set up")
	}
	s.Count.SecondFactor("failure", reason)
	s.Logger.Warn("second factor refused", zap.String("user", user), zap.String("client_ip", ip), zap.String("reason", reason))
	return out
}

// CodeFailed is the refusal of a code given on the profile (status 400,
// or 403 for a step-up), counted and logged.
func (s *Service) CodeFailed(user, ip string, status int, err error) *Refusal {
	return s.codeFailed(user, ip, status, err)
}

// MustEnrol reports whether the session may only set up a second
// factor: second_factor is required and the session began with one
// factor.
func (s *Service) MustEnrol(sess *gate.Session) bool {
	return s.Required && sess.Factors < 2
}

// HasFactor reports whether the account has a second factor: one-time
// codes, or a passkey of the account as it is configured now that
// verifies its user.
func (s *Service) HasFactor(acct *account.Account) bool {
	if s.TOTP.Has(acct.Name) {
		return true
	}
	if s.Passkeys == nil {
		return false
	}
	ok, err := s.Passkeys.Verifying(acct)
	return ok && err == nil
}
