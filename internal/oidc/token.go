package oidc

import (
	"encoding/json"
	"hash/maphash"
	"strings"
	"sync/atomic"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/session"
	"github.com/caddy-miniapp/miniapp/store"
)

// token is what an access or a refresh token carries, sealed: its grant,
// its client and scopes, and its own expiry. An access token's ID is its
// JSON in base64url (never a ':', which the library's token format
// splits on); a refresh token is its JSON sealed whole.
type token struct {
	Grant    Grant    `json:"g"`
	ClientID string   `json:"c"`
	Scopes   []string `json:"s"`
	// Offline: the grant outlives the browser session (a refresh
	// token's, and the access tokens it leads to).
	Offline bool `json:"o,omitempty"`
	// Rotation counts the refresh token's uses.
	Rotation uint32 `json:"r,omitempty"`
	Expires  int64  `json:"e"`
}

// The names that bind sealed tokens: an access token's ID and a refresh
// token. An access token's ID is sealed itself: the library wraps it
// again, but passes a client's unopened value to RevokeToken as if it
// were one, so the ID must be authentic (and has no ':', which the
// library's token format splits on).
const (
	accessName  = "access"
	refreshName = "refresh"
)

// sealToken seals a token under the name.
func sealToken(keys *session.Keyring, name string, t *token) string {
	data, _ := json.Marshal(t) // plain values: never fails
	return keys.SealData(session.PurposeOIDC, data, name)
}

// openToken opens a token sealed under the name, without checking that
// it is live.
func openToken(keys *session.Keyring, name, value string) (*token, bool) {
	data, _, err := keys.OpenData(session.PurposeOIDC, value, name)
	t := new(token)
	if err != nil || json.Unmarshal(data, t) != nil {
		return nil, false
	}
	return t, true
}

// openRefresh opens a refresh token, without checking that it is live.
func openRefresh(keys *session.Keyring, value string) (*token, bool) {
	t, ok := openToken(keys, refreshName, value)
	return t, ok && t.Offline
}

// live reports whether the token may still be used at now: not expired,
// its client still configured and still admitting the user (a reload
// may have changed its groups), its account as it was (not removed,
// password unchanged), not signed
// out everywhere since, its grant not revoked and, unless offline, its
// browser session not ended.
func (p *Provider) live(t *token, now time.Time) bool {
	g := &t.Grant
	if !now.Before(time.Unix(t.Expires, 0)) || len(g.ID) != 16 || len(g.Session) != 16 || len(g.Account) != 16 {
		return false
	}
	acct, ok := p.accountOf(g.User, g.Guest)
	c := p.cfg.client(t.ClientID)
	if !ok || !holds(acct, g.Account, g.Link) || c == nil || !c.admits(acct.Groups, g.Factors) {
		return false
	}
	id := store.AccountID(acct.ID)
	if t.Offline {
		return !p.shared.Revoked(id, [16]byte(g.ID), time.Unix(g.Until, 0), g.Counter, g.Generation)
	}
	return !p.shared.Revoked(id, [16]byte(g.Session), time.Unix(g.SessionExpires, 0), g.Counter, g.Generation) &&
		!p.shared.RevokedID([16]byte(g.ID), time.Unix(g.Until, 0))
}

// splitAccess opens the plain text of an access token (the library's
// "<id>:<subject>") into its token.
func (p *Provider) splitAccess(plain string) (*token, bool) {
	id, _, ok := strings.Cut(plain, ":")
	if !ok {
		return nil, false
	}
	return p.opened.open(p.seal, id)
}

// openedAccess is an access token's ID and what it opened to.
type openedAccess struct {
	id string
	t  *token
}

// accessCache remembers access tokens opened lately, by their sealed
// ID: userinfo and introspection open a token twice (Decrypt, then
// the claims), and a resource server presents one token again and
// again. Only what opened is kept, a slot per ID's hash; whether a
// token is live is checked at each use, never kept. Its tokens are
// shared: read, never changed.
type accessCache struct {
	seed  maphash.Seed
	slots [256]atomic.Pointer[openedAccess]
}

// open opens an access token's ID, from the cache when it holds it.
func (c *accessCache) open(keys *session.Keyring, id string) (*token, bool) {
	slot := &c.slots[maphash.String(c.seed, id)%uint64(len(c.slots))]
	if e := slot.Load(); e != nil && e.id == id {
		return e.t, true
	}
	t, ok := openToken(keys, accessName, id)
	if ok {
		slot.Store(&openedAccess{id: id, t: t})
	}
	return t, ok
}
