package signin

import (
	"context"
	"errors"
	"net/http"

	"github.com/caddy-miniapp/miniapp/internal/gate"
	"github.com/caddy-miniapp/miniapp/internal/records"
	"github.com/caddy-miniapp/miniapp/internal/session"
	"github.com/caddy-miniapp/miniapp/internal/users"
	"github.com/caddy-miniapp/miniapp/store"
	"go.uber.org/zap"
)

// Invite sets the password of a managed account with a one-time token
// (an invite, or a reset) and signs in, in the fair queue of password
// checks (hashing costs as much): a token that does not open counts as
// a failed login of the client; a password the rules refuse is a 400
// naming the rule, and the token stays usable. An account with a
// second factor goes on to its code step: a reset link alone never
// passes it.
func (s *Service) Invite(ctx context.Context, h http.Header, token, password string, rules users.Rules, c Client) Outcome {
	place, wait, err := s.Guard.Enter(ctx, s.guardLogin(c.IP, "", nil), s.Clock.Now())
	if err != nil {
		return s.tooMany(Login{Client: c}, wait, "invite throttled", "too many attempts from this client; try again later")
	}
	r, err := s.Users.Redeem(ctx, token)
	if err != nil {
		place.Leave(errors.Is(err, users.ErrToken))
		s.Logger.Warn("invite refused", zap.String("client_ip", c.IP), zap.Error(err))
		return Outcome{Err: s.usersFailed(err)}
	}
	if err := rules.Check(r.Name, password); err != nil {
		place.Leave(false)
		// the token stays usable: the password form again
		return Outcome{Err: refuse(http.StatusBadRequest, err.Error()), Form: PasswordForm}
	}
	hash, err := rules.Hasher.Hash(password)
	if err != nil {
		place.Leave(false)
		return Outcome{Err: err}
	}
	acct, err := s.Users.Use(ctx, r, hash)
	place.Leave(errors.Is(err, users.ErrToken))
	if err != nil {
		return Outcome{Err: s.usersFailed(err)}
	}
	s.Logger.Info("password set", zap.String("user", acct.Name), zap.String("with", r.Purpose), zap.String("client_ip", c.IP))
	has, err := s.TOTP.HasNow(ctx, acct.Name)
	if err != nil {
		return Outcome{Err: s.codeFailed(acct.Name, c.IP, http.StatusUnauthorized, err)}
	}
	if has {
		return s.askCode(ctx, h, acct, c, session.MethodPassword)
	}
	return s.signIn(ctx, h, acct, c, nil, 1, session.MethodPassword)
}

// ChangePassword changes the password of the session's managed account:
// under the step-up policy (an account with a second factor gives a
// current code unless the session began with both within RecentSignIn;
// a trusted browser's never counts), the current password checked as a
// login (a wrong one counts as a failed login, 403), the new one against
// the rules (400). The account's other sessions and trusted browsers
// end; this one starts anew with its factors. Its second factor and
// passkeys stay.
func (s *Service) ChangePassword(ctx context.Context, h http.Header, sess *gate.Session, current, code, next string, rules users.Rules, c Client) error {
	if !sess.Account.Managed {
		return refuse(http.StatusConflict, users.ErrInConfig.Error())
	}
	switch s.StepUpOf(sess) {
	case StepUpCode:
		if code == "" {
			return refuse(http.StatusForbidden, "enter a current code from your authenticator app (or a recovery code) to change your password")
		}
		if _, err := s.CheckCode(ctx, sess.User, code, c.IP, nil); err != nil {
			return s.codeFailed(sess.User, c.IP, http.StatusForbidden, err)
		}
	case StepUpPasskey:
		return refuse(http.StatusForbidden, "sign in again with your passkey to change your password (a passkey sign-in counts for 10 minutes)")
	}
	place, wait, err := s.Guard.Enter(ctx, s.guardLogin(c.IP, sess.User, nil), s.Clock.Now())
	if err != nil {
		return &Refusal{Status: http.StatusTooManyRequests, Reason: "too many attempts; try again later", Wait: max(wait, 1)}
	}
	acct, reason, err := s.Accounts.Check(sess.User, current)
	if err != nil || acct == nil || acct.ID != sess.Account.ID {
		place.Leave(true)
		s.Count.Login("failure")
		s.Logger.Warn("password change refused", zap.String("user", sess.User), zap.String("client_ip", c.IP), zap.String("reason", reason))
		return refuse(http.StatusForbidden, "the current password is wrong")
	}
	if err := rules.Check(sess.User, next); err != nil {
		place.Leave(false)
		return refuse(http.StatusBadRequest, err.Error())
	}
	hash, err := rules.Hasher.Hash(next)
	place.Leave(false)
	if err != nil {
		return err
	}
	changed, err := s.Users.SetPassword(ctx, sess.Account, hash)
	if err != nil {
		return s.usersFailed(err)
	}
	s.Gate.Shared.SignOutEverywhere(ctx, store.AccountID(sess.Account.ID))
	if err := s.TOTP.UntrustAll(ctx, sess.User); err != nil {
		s.Logger.Error("trusted browsers not ended: the store did not answer", zap.String("user", sess.User), zap.Error(err))
	}
	if s.Ended != nil {
		s.Ended(sess.User, nil)
	}
	s.Gate.Start(ctx, h, c.Wire, changed, gate.Client{IP: c.IP, UserAgent: c.UserAgent, Known: s.Gate.KnownDevice(ctx, c.Wire, sess.User)},
		sess.Factors, sess.Method)
	s.Logger.Info("password changed", zap.String("user", sess.User), zap.String("client_ip", c.IP))
	return nil
}

// usersFailed is a managed account's error as the client sees it.
func (s *Service) usersFailed(err error) error {
	var down records.StoreFailed
	switch {
	case errors.Is(err, users.ErrToken):
		return refuse(http.StatusBadRequest, err.Error())
	case errors.Is(err, users.ErrInConfig), errors.Is(err, users.ErrChanged):
		return refuse(http.StatusConflict, err.Error())
	case errors.Is(err, users.ErrNoUser):
		// removed on another node meanwhile
		return refuse(http.StatusConflict, "this account was removed")
	case errors.Is(err, users.ErrUnreadable):
		s.Logger.Error("a managed account's record does not open", zap.Error(err))
		return refuse(http.StatusConflict, "this account cannot be changed now; ask the server's operator")
	case errors.As(err, &down):
		s.Logger.Error("the store did not answer for a managed account", zap.Error(down.Err))
		return &Refusal{Status: http.StatusServiceUnavailable, Reason: "try again shortly", Wait: 5e9}
	}
	return err
}
