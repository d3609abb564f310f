package oidc

import (
	"context"
	"encoding/hex"
	"errors"
	"slices"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// grantsKey names the record of a user's offline grants: the clients
// holding a refresh token, each at its current rotation.
func grantsKey(user string) string { return "oidc-grants:" + user }

// MaxGrants bounds a user's offline grants: a new one beyond it revokes
// the least recently used.
const MaxGrants = 32

// GrantInfo is an offline grant as the record keeps it and the profile
// and the admin API show it.
type GrantInfo struct {
	// ID names the grant (hex), Client its client's ID.
	ID     string `json:"id"`
	Client string `json:"client"`
	// Rotation counts the uses of its refresh token.
	Rotation uint32 `json:"rotation"`
	// Created, Used and Until are when it was granted, when its refresh
	// token was last used, and when it ends.
	Created time.Time `json:"created"`
	Used    time.Time `json:"used"`
	Until   time.Time `json:"until"`
}

// grantList is the record of a user's offline grants.
type grantList struct {
	Grants   []GrantInfo    `json:"grants"`
	Sessions []sessionGrant `json:"sessions,omitempty"`
}

// accessToken makes the access token of a code's grant or of a refresh
// token, good for the access token lifetime and never beyond its grant.
func (p *Provider) accessToken(req op.TokenRequest) (*token, error) {
	var t token
	switch r := req.(type) {
	case *request:
		t = token{Grant: *r.Grant, ClientID: r.ClientID, Scopes: r.Scopes, Offline: r.Offline()}
	case *refreshRequest:
		t = *r.token
	default:
		return nil, oidc.ErrUnsupportedGrantType()
	}
	t.Expires = min(p.clock.Now().Add(time.Duration(p.cfg.AccessTokenLifetime)).Unix(), t.Grant.Until)
	p.issued(t.ClientID, "access_token")
	return &t, nil
}

// addGrant records a new offline grant of the user, dropping ended ones
// and, beyond MaxGrants, revoking the least recently used.
func (p *Provider) addGrant(ctx context.Context, t *token) error {
	now := p.clock.Now()
	var dropped []GrantInfo
	err := p.swapGrants(ctx, t.Grant.User, func(list *grantList) error {
		list.Grants = slices.DeleteFunc(list.Grants, func(g GrantInfo) bool { return !now.Before(g.Until) })
		dropped = nil
		for len(list.Grants) >= MaxGrants {
			oldest := slices.MinFunc(list.Grants, func(a, b GrantInfo) int { return a.Used.Compare(b.Used) })
			dropped = append(dropped, oldest)
			list.Grants = slices.DeleteFunc(list.Grants, func(g GrantInfo) bool { return g.ID == oldest.ID })
		}
		list.Grants = append(list.Grants, GrantInfo{ID: hex.EncodeToString(t.Grant.ID), Client: t.ClientID, Created: now, Used: now,
			Until: time.Unix(t.Grant.Until, 0)})
		return nil
	})
	for _, g := range dropped {
		p.revokeID(ctx, g)
	}
	if err == nil {
		p.issued(t.ClientID, "refresh_token")
	}
	return err
}

// errReused is a refresh token presented after its rotation.
var errReused = errors.New("the refresh token was used before: its grant is revoked")

// useGrant rotates an offline grant for the refresh token t: it must be
// the grant's current rotation, which it moves on; an earlier one
// (a stolen token, or a client's replay) revokes the grant.
func (p *Provider) useGrant(ctx context.Context, t *token) error {
	id := hex.EncodeToString(t.Grant.ID)
	var reused *GrantInfo
	err := p.swapGrants(ctx, t.Grant.User, func(list *grantList) error {
		reused = nil
		i := slices.IndexFunc(list.Grants, func(g GrantInfo) bool { return g.ID == id })
		if i < 0 {
			return op.ErrInvalidRefreshToken
		}
		g := &list.Grants[i]
		if g.Rotation != t.Rotation {
			reused = new(GrantInfo)
			*reused = *g
			list.Grants = slices.Delete(list.Grants, i, i+1)
			return nil
		}
		g.Rotation++
		g.Used = p.clock.Now()
		return nil
	})
	switch {
	case errors.Is(err, op.ErrInvalidRefreshToken):
		p.refused(t.ClientID, "refresh_token_revoked")
		return oidc.ErrInvalidGrant().WithDescription("the refresh token was revoked")
	case err != nil:
		return oidc.ErrServerError().WithDescription("the store did not answer")
	case reused != nil:
		p.revokeID(ctx, *reused)
		p.refused(t.ClientID, "refresh_token_reused")
		return oidc.ErrInvalidGrant().WithDescription("%s", errReused)
	}
	t.Rotation++
	p.issued(t.ClientID, "refresh_token")
	return nil
}

// RevokeGrant ends a grant of the user: its tokens, on every node within
// the store's window, and its place in the user's grants.
func (p *Provider) RevokeGrant(ctx context.Context, user string, grant []byte) error {
	id := hex.EncodeToString(grant)
	var found *GrantInfo
	err := p.swapGrants(ctx, user, func(list *grantList) error {
		found = nil
		i := slices.IndexFunc(list.Grants, func(g GrantInfo) bool { return g.ID == id })
		if i >= 0 {
			found = new(GrantInfo)
			*found = list.Grants[i]
			list.Grants = slices.Delete(list.Grants, i, i+1)
		}
		return nil
	})
	if found == nil {
		// not offline (or gone already): its tokens end with the
		// access token's lifetime at most
		found = &GrantInfo{ID: id, Until: p.clock.Now().Add(time.Duration(p.cfg.AccessTokenLifetime))}
	}
	p.revokeID(ctx, *found)
	return err
}

// revokeID puts the grant's ID on the realm's revocation list until it
// ends.
func (p *Provider) revokeID(ctx context.Context, g GrantInfo) {
	id, err := hex.DecodeString(g.ID)
	if err == nil && len(id) == 16 {
		p.shared.Revoke(ctx, [16]byte(id), g.Until)
	}
}

// Grants are the user's live offline grants, newest first.
func (p *Provider) Grants(user string) ([]GrantInfo, error) {
	var list grantList
	if sealed := p.records.Get(grantsKey(user)); sealed != nil {
		if err := p.records.Open(grantsKey(user), sealed, &list); err != nil {
			return nil, err
		}
	}
	now := p.clock.Now()
	live := slices.DeleteFunc(list.Grants, func(g GrantInfo) bool {
		id, err := hex.DecodeString(g.ID)
		return err != nil || len(id) != 16 || !now.Before(g.Until) || p.shared.RevokedID([16]byte(id), g.Until)
	})
	slices.SortFunc(live, func(a, b GrantInfo) int { return b.Created.Compare(a.Created) })
	return live, nil
}

// swapGrants changes the user's grants record with change, which sees
// it opened (empty when there is none); an empty list removes it.
func (p *Provider) swapGrants(ctx context.Context, user string, change func(*grantList) error) error {
	key := grantsKey(user)
	return p.records.Swap(ctx, key, func(sealed []byte) ([]byte, error) {
		var list grantList
		if sealed != nil {
			if err := p.records.Open(key, sealed, &list); err != nil {
				// an unreadable record is started anew: its grants'
				// refresh tokens are refused as unknown
				list = grantList{}
			}
		}
		if err := change(&list); err != nil {
			return nil, err
		}
		if len(list.Grants) == 0 && len(list.Sessions) == 0 {
			return nil, nil
		}
		return p.records.Seal(key, &list), nil
	})
}
