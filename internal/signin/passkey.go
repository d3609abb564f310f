package signin

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/passkey"
	"github.com/caddy-miniapp/miniapp/internal/records"
	"github.com/caddy-miniapp/miniapp/internal/session"
	"github.com/go-webauthn/webauthn/webauthn"
	"go.uber.org/zap"
)

// Passkey signs in with a passkey's assertion, without a password or a
// user name: of two factors when the authenticator verified the user;
// of one otherwise, and then an account with one-time codes gets the
// code step instead.
func (s *Service) Passkey(ctx context.Context, h http.Header, rp *webauthn.WebAuthn, in passkey.Finish, c Client) Outcome {
	parsed, err := passkey.ParseLogin(in)
	if err != nil {
		return Outcome{Err: err}
	}
	place, wait, err := s.Guard.EnterCheck(s.guardLogin(c.IP, "", nil), s.Clock.Now())
	if err != nil {
		return s.tooMany(Login{Client: c}, wait, "passkey sign-in throttled", err.Error())
	}
	a, err := s.Passkeys.Login(ctx, rp, in.Ceremony, parsed)
	place.Leave(err != nil)
	if errors.Is(err, passkey.ErrCloned) {
		s.Logger.Warn("passkey refused: its signature counter went backwards (a cloned key?)", zap.String("user", a.Account.Name),
			zap.String("client_ip", c.IP))
	}
	if errors.Is(err, passkey.ErrRefused) {
		s.Count.Login("failure")
		s.Logger.Warn("passkey sign-in refused", zap.String("client_ip", c.IP), zap.Error(err))
		return Outcome{Err: refuse(http.StatusUnauthorized, passkey.ErrRefused.Error())}
	}
	if err != nil {
		return Outcome{Err: err}
	}
	acct := a.Account
	known := s.Gate.KnownDevice(ctx, c.Wire, acct.Name)
	has, err := s.TOTP.HasNow(ctx, acct.Name)
	if err != nil {
		return Outcome{Err: s.PasskeyFailed(acct.Name, err)}
	}
	if !a.Verified && has {
		// a passkey without user verification is one factor: the code
		// follows
		s.Passkeys.MarkUsed(ctx, a, nil)
		return s.askCode(ctx, h, acct, c, session.MethodPassword)
	}
	factors := uint8(1)
	if a.Verified {
		factors = 2
		s.Count.SecondFactor("success", "passkey")
	}
	out := s.signIn(ctx, h, acct, c, known, factors, session.MethodPasskey)
	s.Passkeys.MarkUsed(ctx, a, out.Session.Session)
	return out
}

// PasskeyFailed is the refusal of a passkeys record that does not open
// (403: an operator resets it with caddy miniapp passkeys-reset) or of
// a store that did not answer (503); any other error (a refusal) goes
// on as it is. Logged as a passkey failure, never as a second factor's.
func (s *Service) PasskeyFailed(user string, err error) error {
	if errors.Is(err, records.ErrUnreadable) {
		s.Logger.Error("a user's passkeys record does not open; reset it with caddy miniapp passkeys-reset", zap.String("user", user))
		return refuse(http.StatusForbidden, "your passkeys cannot be read; ask an operator to reset them")
	}
	if down, ok := errors.AsType[records.StoreFailed](err); ok {
		s.Logger.Error("changing or checking a passkey", zap.String("user", user), zap.Error(down.Err))
		return &Refusal{Status: http.StatusServiceUnavailable, Reason: "passkeys cannot be used now; try again shortly", Wait: 5 * time.Second}
	}
	if errors.Is(err, passkey.ErrNoKey) {
		return refuse(http.StatusNotFound, "no such passkey of this user")
	}
	return err
}
