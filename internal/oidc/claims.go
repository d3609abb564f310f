package oidc

import (
	"context"

	"crypto/sha256"
	"encoding/base64"
	"github.com/caddy-miniapp/miniapp/internal/account"
	"github.com/caddy-miniapp/miniapp/internal/session"
	"slices"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// subjectOf is the sub of a configured account (key cfg:<name>) or of
// a guest (key guest:<provider>:<id>), for a grants record from before
// its entries kept their sub.
func (p *Provider) subjectOf(user string, guest bool) string {
	if guest {
		return Subject(p.realm, "guest:"+user)
	}
	return Subject(p.realm, "cfg:"+user)
}

// accountOf is the account of a grant's user as the config has it now:
// a configured account, or a guest the guests block still admits with
// what its provider said.
func (p *Provider) accountOf(user string, guest *session.Guest) (*account.Account, bool) {
	if guest == nil {
		return p.accounts.Lookup(user)
	}
	if p.guests == nil {
		return nil, false
	}
	return p.guests(user, guest)
}

// Claims are what an account's scopes show a client: profile
// (preferred_username, name), email (email, email_verified: a configured
// address is the operator's word) and groups (an array, empty when there
// are none). Userinfo answers them as they marshal.
type Claims struct {
	Subject           string `json:"sub"`
	PreferredUsername string `json:"preferred_username,omitempty"`
	Name              string `json:"name,omitempty"`
	Email             string `json:"email,omitempty"`
	EmailVerified     bool   `json:"email_verified,omitempty"`
	// Groups is nil without the groups scope.
	Groups []string `json:"groups,omitzero"`
}

// holds reports whether the account as the config has it now is the
// one a grant was made for: its ID, and the link its session began
// through (if any) still its.
func holds(acct *account.Account, id, link []byte) bool {
	if len(id) != len(acct.ID) || [16]byte(id) != acct.ID {
		return false
	}
	if len(link) == 0 {
		return true
	}
	_, ok := acct.LinkOf(account.Tag(link))
	return len(link) == account.TagLen && ok
}

// claimsOf are the claims of the grant's account for the scopes; an
// account gone from the config (a guest it no longer admits) has none.
// A guest's preferred_username is its ID (<provider>:<id>), never the
// name it has at its provider, which could be a configured user's.
func (p *Provider) claimsOf(g *Grant, scopes []string) (Claims, error) {
	acct, ok := p.accountOf(g.User, g.Guest)
	if !ok {
		return Claims{}, errNotLive
	}
	c := Claims{Subject: g.Subject}
	for _, scope := range scopes {
		switch scope {
		case oidc.ScopeProfile:
			c.PreferredUsername, c.Name = acct.Name, acct.FullName
		case oidc.ScopeEmail:
			if acct.Email != "" {
				c.Email, c.EmailVerified = acct.Email, true
			}
		case scopeGroups:
			c.Groups = append([]string{}, acct.Groups...)
		}
	}
	return c, nil
}

// claims fills the library's info (an ID token's, introspection's) with
// the claims of the grant's account for the scopes.
func (p *Provider) claims(info *oidc.UserInfo, g *Grant, scopes []string) error {
	c, err := p.claimsOf(g, scopes)
	if err != nil {
		return err
	}
	info.Subject, info.PreferredUsername, info.Name = c.Subject, c.PreferredUsername, c.Name
	info.Email, info.EmailVerified = c.Email, oidc.Bool(c.EmailVerified)
	if c.Groups != nil {
		info.AppendClaims("groups", c.Groups)
	}
	return nil
}

// SetUserinfoFromRequest fills an ID token's claims by scope from its
// grant, and adds the sid of the browser session it was issued through,
// which end_session and back-channel logout name it by, and to a
// refreshed one the acr of its sign-in.
func (s storage) SetUserinfoFromRequest(_ context.Context, info *oidc.UserInfo, req op.IDTokenRequest, scopes []string) error {
	var g *Grant
	switch r := req.(type) {
	case *request:
		g = r.Grant
	case *refreshRequest:
		g = &r.token.Grant
		if g.ACR != "" {
			// the library puts a code's acr in its ID token itself
			info.AppendClaims("acr", g.ACR)
		}
	}
	if g == nil {
		return errNotLive
	}
	if err := s.p.claims(info, g, scopes); err != nil {
		return err
	}
	info.AppendClaims("sid", SessionID(g.Session))
	return nil
}

// SessionID is the sid of a browser session as relying parties see it:
// a digest of its ID, which stays the realm's own.
func SessionID(session []byte) string {
	sum := sha256.Sum256(append([]byte("miniapp sid\x00"), session...))
	return base64.RawURLEncoding.EncodeToString(sum[:16])
}

// client is a configured client as the library sees it.
type client struct {
	c        *Client
	lifetime time.Duration
}

func (c client) GetID() string                    { return c.c.ID }
func (c client) RedirectURIs() []string           { return c.c.RedirectURIs }
func (c client) PostLogoutRedirectURIs() []string { return c.c.PostLogoutRedirectURIs }
func (c client) ResponseTypes() []oidc.ResponseType {
	return []oidc.ResponseType{oidc.ResponseTypeCode}
}
func (c client) GrantTypes() []oidc.GrantType {
	return []oidc.GrantType{oidc.GrantTypeCode, oidc.GrantTypeRefreshToken}
}

// ApplicationType is native for a public client (loopback redirects on
// any port, RFC 8252) and web for a confidential one.
func (c client) ApplicationType() op.ApplicationType {
	if c.c.Public() {
		return op.ApplicationTypeNative
	}
	return op.ApplicationTypeWeb
}

// AuthMethod is none for a public client and the secret, in the header
// or the body, for a confidential one.
func (c client) AuthMethod() oidc.AuthMethod {
	if c.c.Public() {
		return oidc.AuthMethodNone
	}
	return oidc.AuthMethodBasic
}

// LoginURL is the module's callback: it signs in (or finds the session)
// and finishes the request.
func (c client) LoginURL(id string) string { return CallbackPath + "?id=" + id }

func (c client) AccessTokenType() op.AccessTokenType { return op.AccessTokenTypeBearer }
func (c client) IDTokenLifetime() time.Duration      { return c.lifetime }
func (c client) DevMode() bool                       { return false }
func (c client) ClockSkew() time.Duration            { return 0 }

// IDTokenUserinfoClaimsAssertion puts the scopes' claims in the ID token
// as well as in userinfo.
func (c client) IDTokenUserinfoClaimsAssertion() bool { return true }

// IsScopeAllowed allows the groups scope beside the standard ones.
func (c client) IsScopeAllowed(scope string) bool { return scope == scopeGroups }

func (c client) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return slices.Clone[[]string]
}

func (c client) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return slices.Clone[[]string]
}
