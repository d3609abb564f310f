package signin

import (
	"context"
	"encoding/hex"
	"net/http"

	"github.com/caddy-miniapp/miniapp/internal/account"
	"github.com/caddy-miniapp/miniapp/internal/gate"
	"github.com/caddy-miniapp/miniapp/internal/totp"
	"go.uber.org/zap"
)

// trustedBrowser reports whether the wire's browser is trusted for the
// account's second factor: its trust cookie is of the account, and the
// account's record still holds the trust.
func (s *Service) trustedBrowser(wire gate.Wire, acct *account.Account) bool {
	if s.Remember <= 0 {
		return false
	}
	t := s.Gate.TrustOf(wire, acct)
	return t != nil && s.TOTP.Trusted(acct.Name, t.ID)
}

// trustBrowser trusts the login's browser for the account's second
// factor, when the login asked for it and the realm allows it: its
// cookie, and the account's record. A store that does not answer
// leaves the browser untrusted (and the sign-in goes on).
func (s *Service) trustBrowser(ctx context.Context, h http.Header, acct *account.Account, in Login) {
	if !in.Trust || s.Remember <= 0 {
		return
	}
	hh := http.Header{}
	t := s.Gate.SetTrust(hh, in.Wire, acct, s.Remember)
	err := s.TOTP.Trust(ctx, acct.Name, totp.Trust{ID: hex.EncodeToString(t.ID[:]), Device: gate.DeviceName(in.UserAgent), Address: in.IP,
		Created: t.Issued.UTC(), Expires: t.Expires.UTC()})
	if err != nil {
		s.Logger.Warn("a browser could not be trusted: the store did not answer", zap.String("user", acct.Name), zap.Error(err))
		return
	}
	for _, line := range hh.Values("Set-Cookie") {
		h.Add("Set-Cookie", line)
	}
	s.Logger.Info("browser trusted for the second factor", zap.String("user", acct.Name), zap.String("client_ip", in.IP))
}

// Untrust ends one of the user's trusted browsers, by its ID (hex), as
// asked from the client address ip; ok is false for none of the user's.
// The sessions it began go on: sign out everywhere ends them.
func (s *Service) Untrust(ctx context.Context, user, id, ip string) (bool, error) {
	ok, err := s.TOTP.Untrust(ctx, user, id)
	if err == nil && ok {
		s.Logger.Info("browser no longer trusted", zap.String("user", user), zap.String("client_ip", ip))
	}
	return ok, err
}
