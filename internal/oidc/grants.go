package oidc

import (
	"context"
	"encoding/hex"
	"errors"
	"slices"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/session"
	"github.com/caddy-miniapp/miniapp/store"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// GrantsKind names the records of a user's offline grants (see
// records.Store.Key): the clients holding a refresh token, each at its
// current rotation.
const GrantsKind = "oidc-grants"

// MaxGrants bounds a user's offline grants: a new one beyond it revokes
// the least recently used.
const MaxGrants = 32

// GrantInfo is an offline grant as the profile and the admin API show
// it.
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

// grantEntry is an offline grant as the user's record keeps it: what
// it shows, and what tied it to the account at the sign-in (so that a
// grant ended by sign out everywhere, a new password or a lost store is
// not listed).
type grantEntry struct {
	GrantInfo
	Account    []byte `json:"account"`
	Counter    uint32 `json:"counter"`
	Generation uint64 `json:"generation"`
	// Told: its client was told the account ended (Sweep).
	Told bool `json:"told,omitempty"`
	// Guest is what a guest's provider said, nil for a configured
	// account; Link the tag of the link its session began through;
	// Subject the account's sub.
	Guest   *session.Guest `json:"guest,omitempty"`
	Link    []byte         `json:"link,omitempty"`
	Subject string         `json:"sub,omitempty"`
}

// grantList is the record of a user's grants.
type grantList struct {
	Grants   []grantEntry   `json:"grants"`
	Sessions []sessionGrant `json:"sessions,omitempty"`
}

// accessToken makes the access token of a code's grant (using the code
// up) or of a refresh token, good for the access token lifetime and
// never beyond its grant.
func (p *Provider) accessToken(ctx context.Context, req op.TokenRequest) (*token, error) {
	var t token
	switch r := req.(type) {
	case *request:
		if err := p.useCode(ctx, r); err != nil {
			return nil, err
		}
		t = token{Grant: *r.Grant, ClientID: r.ClientID, Scopes: r.Scopes, Offline: r.Offline()}
	case *refreshRequest:
		t = *r.token
	default:
		return nil, oidc.ErrUnsupportedGrantType()
	}
	t.Expires = min(p.clock.Now().Add(time.Duration(p.cfg.AccessTokenLifetime)).Unix(), t.Grant.Until)
	return &t, nil
}

// addGrant records a new offline grant of the user, dropping ended ones
// and, beyond MaxGrants, revoking the least recently used.
func (p *Provider) addGrant(ctx context.Context, t *token) error {
	now := p.clock.Now()
	g := &t.Grant
	var dropped []grantEntry
	err := p.swapGrants(ctx, g.User, func(list *grantList) error {
		list.Grants = slices.DeleteFunc(list.Grants, func(e grantEntry) bool { return !now.Before(e.Until) })
		dropped = nil
		for len(list.Grants) >= MaxGrants {
			oldest := slices.MinFunc(list.Grants, func(a, b grantEntry) int { return a.Used.Compare(b.Used) })
			dropped = append(dropped, oldest)
			list.Grants = slices.DeleteFunc(list.Grants, func(e grantEntry) bool { return e.ID == oldest.ID })
		}
		list.Grants = append(list.Grants, grantEntry{GrantInfo: GrantInfo{ID: hex.EncodeToString(g.ID), Client: t.ClientID,
			Created: now, Used: now, Until: time.Unix(g.Until, 0)}, Account: g.Account, Counter: g.Counter, Generation: g.Generation,
			Guest: g.Guest, Link: g.Link, Subject: g.Subject})
		return nil
	})
	for _, e := range dropped {
		p.revokeID(ctx, e.ID, e.Until)
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
	var reused *grantEntry
	err := p.swapGrants(ctx, t.Grant.User, func(list *grantList) error {
		reused = nil
		i := slices.IndexFunc(list.Grants, func(e grantEntry) bool { return e.ID == id })
		if i < 0 {
			return op.ErrInvalidRefreshToken
		}
		e := &list.Grants[i]
		if e.Rotation != t.Rotation {
			reused = new(grantEntry)
			*reused = *e
			list.Grants = slices.Delete(list.Grants, i, i+1)
			return nil
		}
		e.Rotation++
		e.Used = p.clock.Now()
		return nil
	})
	if reused != nil {
		// revoked even when the record's change did not reach the store
		p.revokeID(ctx, reused.ID, reused.Until)
		p.refused(t.ClientID, "refresh_token_reused")
		return oidc.ErrInvalidGrant().WithDescription("%s", errReused)
	}
	switch {
	case errors.Is(err, op.ErrInvalidRefreshToken):
		p.refused(t.ClientID, "refresh_token_revoked")
		return oidc.ErrInvalidGrant().WithDescription("the refresh token was revoked")
	case err != nil:
		return oidc.ErrServerError().WithDescription("the store did not answer")
	}
	t.Rotation++
	p.issued(t.ClientID, "refresh_token")
	return nil
}

// revoke ends the grant of a token its client gave back (RFC 7009): on
// the revocation list until the grant ends, and, for an offline grant,
// out of the user's grants. A grant revoked before costs no write.
func (p *Provider) revoke(ctx context.Context, t *token) error {
	g := &t.Grant
	until := time.Unix(g.Until, 0)
	if p.shared.RevokedID([16]byte(g.ID), until) {
		return nil
	}
	if t.Offline {
		return p.RevokeGrant(ctx, g.User, g.ID)
	}
	p.shared.Revoke(ctx, [16]byte(g.ID), until)
	return nil
}

// RevokeGrant ends an offline grant of the user: its tokens, on every
// node within the store's window, and its place in the user's grants.
// A grant the user does not hold is left alone.
func (p *Provider) RevokeGrant(ctx context.Context, user string, grant []byte) error {
	id := hex.EncodeToString(grant)
	var found *grantEntry
	err := p.swapGrants(ctx, user, func(list *grantList) error {
		found = nil
		i := slices.IndexFunc(list.Grants, func(e grantEntry) bool { return e.ID == id })
		if i >= 0 {
			found = new(grantEntry)
			*found = list.Grants[i]
			list.Grants = slices.Delete(list.Grants, i, i+1)
		}
		return nil
	})
	if found != nil {
		p.revokeID(ctx, found.ID, found.Until)
	}
	return err
}

// revokeID puts a grant's ID (hex) on the realm's revocation list until
// it ends.
func (p *Provider) revokeID(ctx context.Context, grant string, until time.Time) {
	id, err := hex.DecodeString(grant)
	if err == nil && len(id) == 16 {
		p.shared.Revoke(ctx, [16]byte(id), until)
	}
}

// Grants are the user's live offline grants, newest first: not ended,
// revoked, signed out everywhere since, nor of an account since changed.
func (p *Provider) Grants(user string) ([]GrantInfo, error) {
	list, err := p.grantsOf(user)
	if err != nil {
		return nil, err
	}
	now := p.clock.Now()
	var live []GrantInfo
	for _, e := range list.Grants {
		acct, ok := p.accountOf(user, e.Guest)
		id, err := hex.DecodeString(e.ID)
		if err == nil && len(id) == 16 && ok && holds(acct, e.Account, e.Link) && now.Before(e.Until) &&
			!p.shared.Revoked(store.AccountID(acct.ID), [16]byte(id), e.Until, e.Counter, e.Generation) {
			live = append(live, e.GrantInfo)
		}
	}
	slices.SortFunc(live, func(a, b GrantInfo) int { return b.Created.Compare(a.Created) })
	return live, nil
}

// grantsOf opens the user's grants record as this node holds it (empty
// when there is none).
func (p *Provider) grantsOf(user string) (*grantList, error) {
	return p.grantsAt(p.records.Key(GrantsKind, user))
}

// grantsAt opens the grants record named key as this node holds it.
func (p *Provider) grantsAt(key string) (*grantList, error) {
	list := new(grantList)
	if sealed := p.records.Get(key); sealed != nil {
		if err := p.records.Open(key, sealed, list); err != nil {
			return nil, err
		}
	}
	return list, nil
}

// swapGrants changes the user's grants record with change, which sees
// it opened (empty when there is none); an empty list removes it.
func (p *Provider) swapGrants(ctx context.Context, user string, change func(*grantList) error) error {
	return p.swapGrantsAt(ctx, p.records.Key(GrantsKind, user), change)
}

// swapGrantsAt is swapGrants on the record named key.
func (p *Provider) swapGrantsAt(ctx context.Context, key string, change func(*grantList) error) error {
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
