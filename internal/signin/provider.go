package signin

import (
	"context"
	"net/http"

	"github.com/caddy-miniapp/miniapp/internal/account"
	"github.com/caddy-miniapp/miniapp/internal/idp"
	"github.com/caddy-miniapp/miniapp/internal/session"
	"go.uber.org/zap"
)

// Provider signs in with an identity another provider vouched for,
// under the client's login throttle (it costs no password check, so it
// takes no slot): the account linked to it, then the account's second
// factor as after a password (unless the provider checked one itself
// and its block trusts that), a new session. An identity linked to no
// account is refused and counts as a failed login of the client.
func (s *Service) Provider(ctx context.Context, h http.Header, p *idp.Provider, id idp.Identity, c Client) Outcome {
	place, wait, err := s.Guard.EnterCheck(s.guardLogin(c.IP, "", nil), s.Clock.Now())
	if err != nil {
		return s.tooMany(Login{Client: c}, wait, "login throttled", "too many failed logins from this client; try again later")
	}
	acct := s.linked(p, id)
	place.Leave(acct == nil)
	if acct == nil {
		s.Count.Login("failure")
		s.Logger.Warn("login failed", zap.String("provider", p.Name), zap.String("subject", id.Subject), zap.String("client_ip", c.IP),
			zap.String("reason", "not linked to a user"))
		return Outcome{Err: refuse(http.StatusForbidden, "this account is not allowed here"), Form: PasswordForm}
	}
	has, err := s.TOTP.HasNow(ctx, acct.Name)
	if err != nil {
		return Outcome{Err: s.codeFailed(acct.Name, c.IP, http.StatusUnauthorized, err)}
	}
	trusted := p.TrustProviderMFA && id.MFA
	if has && !trusted {
		return s.askCode(ctx, h, acct, c, session.MethodProvider)
	}
	factors := uint8(1)
	if trusted {
		factors = 2
	}
	return s.signIn(ctx, h, acct, c, nil, factors, session.MethodProvider)
}

// linked is the account linked to the identity: by its stable ID, or
// by its e-mail address where the provider vouches for it and its block
// allows linking by it; nil for none.
func (s *Service) linked(p *idp.Provider, id idp.Identity) *account.Account {
	if acct, ok := s.Accounts.Linked(p.Name, id.Subject); ok {
		return acct
	}
	if p.LinkByEmail && id.EmailVerified && id.Email != "" {
		if acct, ok := s.Accounts.Linked(p.Name, id.Email); ok {
			return acct
		}
	}
	return nil
}
