package signin

import (
	"cmp"
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/caddy-miniapp/miniapp/internal/account"
	"github.com/caddy-miniapp/miniapp/internal/gate"
	"github.com/caddy-miniapp/miniapp/internal/idp"
	"github.com/caddy-miniapp/miniapp/internal/session"
	"go.uber.org/zap"
)

// Exchange finishes a sign-in at a provider: the callback's code
// exchanged for the identity the provider vouches for, or an
// *idp.Error.
type Exchange func(context.Context) (idp.Identity, error)

// Provider signs in with the identity a provider vouches for, under the
// client's login throttle: the exchange runs only where the throttle
// lets the client in (it costs no password check, so it takes no
// slot), and a code or ID token the provider refuses counts as a failed
// login of the client. Then the account linked to the identity, its
// second factor as after a password (unless the provider checked one
// itself and its block trusts that), a new session bound to the link;
// or, for an identity linked to no account that the guests block
// admits, a guest's session. Any other identity is refused and counts
// as a failed login too.
func (s *Service) Provider(ctx context.Context, h http.Header, p *idp.Provider, exchange Exchange, c Client) Outcome {
	c.Via = p.Name
	place, wait, err := s.Guard.EnterCheck(s.guardLogin(c.IP, "", nil), s.Clock.Now())
	if err != nil {
		return s.tooMany(Login{Client: c}, wait, "login throttled", "too many failed logins from this client; try again later")
	}
	id, err := exchange(ctx)
	if err != nil {
		failed, ok := errors.AsType[*idp.Error](err)
		refused := ok && failed.Refused
		place.Leave(refused)
		if refused {
			s.Count.Login("failure")
		}
		return Outcome{Err: err}
	}
	acct, link := s.linked(p, id)
	var g *session.Guest
	if acct == nil && s.Guests != nil {
		g = s.guestClaims(id)
	}
	// the conditions hold for exactly what the cookie will carry
	guest := g != nil && s.Guests.Admits(idp.Identity{Provider: id.Provider, Groups: g.Groups, Email: g.Email, EmailVerified: g.Email != ""})
	place.Leave(acct == nil && !guest)
	if guest {
		return s.signInGuest(ctx, h, p, id, g, c)
	}
	if acct == nil {
		s.Count.Login("failure")
		s.Logger.Warn("login failed", zap.String("provider", p.Name), zap.String("subject", id.Subject), zap.String("client_ip", c.IP),
			zap.String("reason", "not linked to a user"))
		return Outcome{Err: refuse(http.StatusForbidden, "this account is not allowed here"), Form: PasswordForm}
	}
	c.Link = &link
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

// linked is the account linked to the identity, with the link: by its
// stable ID, or by its e-mail address where the provider vouches for it
// and its block allows linking by it; nil for none.
func (s *Service) linked(p *idp.Provider, id idp.Identity) (*account.Account, account.Link) {
	if acct, ok := s.Accounts.Linked(p.Name, id.Subject); ok {
		return acct, account.Link{Provider: p.Name, Subject: id.Subject}
	}
	if p.LinkByEmail && id.EmailVerified && id.Email != "" {
		if acct, ok := s.Accounts.LinkedByEmail(p.Name, id.Email); ok {
			return acct, account.Link{Provider: p.Name, Subject: id.Email}
		}
	}
	return nil, account.Link{}
}

// maxGuestGroups bounds the provider's groups a guest's cookie carries,
// joined.
const maxGuestGroups = 512

// signInGuest starts a guest's session: the user <provider>:<id>, with
// what the provider said sealed in the cookie, and nothing stored. A
// guest has no second factor here: with second_factor required, only
// one the provider checked and its block trusts lets a guest in.
func (s *Service) signInGuest(ctx context.Context, h http.Header, p *idp.Provider, id idp.Identity, g *session.Guest, c Client) Outcome {
	factors := uint8(1)
	if p.TrustProviderMFA && id.MFA {
		factors = 2
	}
	if s.Required && factors < 2 {
		s.Count.Login("failure")
		s.Logger.Warn("login failed", zap.String("provider", p.Name), zap.String("subject", id.Subject), zap.String("client_ip", c.IP),
			zap.String("reason", "a guest without a second factor the provider checked"))
		return Outcome{Err: refuse(http.StatusForbidden, "this site needs two-step sign-in: use one at "+p.Label), Form: PasswordForm}
	}
	acct := account.Guest(s.Realm, id.Provider+":"+id.Subject, g.Name, g.Email, s.Guests.GroupsOf(id.Provider, g.Groups))
	sess := s.Gate.Start(ctx, h, c.Wire, acct, gate.Client{IP: c.IP, UserAgent: c.UserAgent, Guest: g, Via: c.Via}, factors, session.MethodProvider)
	s.Count.Login("success")
	s.Logger.Info("login", zap.String("user", acct.Name), zap.String("client_ip", c.IP), zap.Uint8("factors", factors),
		zap.Stringer("method", session.MethodProvider), zap.Bool("guest", true))
	return Outcome{Session: sess}
}

// guestClaims is what a guest's cookie carries of the identity: its
// display name, its address if verified, and its groups up to
// maxGuestGroups bytes, those the guests block asks for first.
func (s *Service) guestClaims(id idp.Identity) *session.Guest {
	g := &session.Guest{Name: cmp.Or(id.Username, id.Name)}
	if id.EmailVerified {
		g.Email = id.Email
	}
	asked := func(group string) bool { return s.Guests.Asks(id.Provider, group) }
	groups := append(slices.DeleteFunc(slices.Clone(id.Groups), func(g string) bool { return !asked(g) }),
		slices.DeleteFunc(slices.Clone(id.Groups), asked)...)
	size := 0
	for _, group := range groups {
		if size += len(group) + 1; size > maxGuestGroups {
			break
		}
		g.Groups = append(g.Groups, group)
	}
	return g
}

// GuestAccount is the account of a guest's session while the config
// admits it (its provider still among the guests' providers, its claims
// still meeting the conditions), with the groups the config gives now.
func (s *Service) GuestAccount(sess *session.Session) (*account.Account, bool) {
	provider, _, ok := strings.Cut(sess.User, ":")
	g := sess.Guest
	if !ok || g == nil || !s.Guests.Admits(idp.Identity{Provider: provider, Groups: g.Groups, Email: g.Email, EmailVerified: g.Email != ""}) {
		return nil, false
	}
	return account.Guest(s.Realm, sess.User, g.Name, g.Email, s.Guests.GroupsOf(provider, g.Groups)), true
}

// GuestNamed is the account of a guest by name (<provider>:<id>) where
// guests may sign in through that provider, as the admin API signs it
// out or lists its sessions: its ID is all that counts there.
func (s *Service) GuestNamed(name string) (*account.Account, bool) {
	provider, id, ok := strings.Cut(name, ":")
	if !ok || id == "" || s.Guests == nil || !slices.Contains(s.Guests.From, provider) {
		return nil, false
	}
	return account.Guest(s.Realm, name, "", "", nil), true
}
