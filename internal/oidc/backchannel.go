package oidc

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/account"
	"github.com/caddy-miniapp/miniapp/internal/session"
	jose "github.com/go-jose/go-jose/v4"
	"go.uber.org/zap"
)

// Back-channel logout (OpenID Connect Back-Channel Logout 1.0): when a
// session ends, or every session of a user, each client with a
// backchannel_logout_uri that holds a grant of it is told, so that
// signing out here signs out of every app at once.

// sessionGrant is a browser session through which a client with a
// back-channel logout URI got tokens: the user's grants record keeps it
// until the session's end, so its logout reaches the client.
type sessionGrant struct {
	Client  string    `json:"client"`
	Session string    `json:"session"`
	Until   time.Time `json:"until"`
	// Account is the account ID the session was bound to; Told, that
	// its client was told the account ended (Sweep).
	Account []byte `json:"account,omitempty"`
	Told    bool   `json:"told,omitempty"`
	// Guest is what a guest's provider said, nil for a configured
	// account; Link the tag of the link the session began through;
	// Subject the account's sub.
	Guest   *session.Guest `json:"guest,omitempty"`
	Link    []byte         `json:"link,omitempty"`
	Subject string         `json:"sub,omitempty"`
}

// maxSessionGrants bounds the sessions a user's grants record keeps.
const maxSessionGrants = 64

// The delivery of a logout token: attempts, the pause before the
// second (doubling after), and each attempt's time limit.
const (
	logoutAttempts = 3
	logoutBackoff  = 2 * time.Second
	logoutTimeout  = 5 * time.Second
)

// logoutEvent is the event claim of a logout token.
const logoutEvent = "http://schemas.openid.net/event/backchannel-logout"

// noteSession records, for a client with a back-channel logout URI,
// the browser session its tokens came through.
func (p *Provider) noteSession(ctx context.Context, t *token) error {
	c := p.cfg.client(t.ClientID)
	if c == nil || c.BackchannelLogoutURI == "" {
		return nil
	}
	now, sid := p.clock.Now(), hex.EncodeToString(t.Grant.Session)
	if list, err := p.grantsOf(t.Grant.User); err == nil &&
		slices.ContainsFunc(list.Sessions, func(s sessionGrant) bool { return s.Client == c.ID && s.Session == sid }) {
		return nil
	}
	return p.swapGrants(ctx, t.Grant.User, func(list *grantList) error {
		list.Sessions = slices.DeleteFunc(list.Sessions, func(s sessionGrant) bool { return !now.Before(s.Until) })
		if slices.ContainsFunc(list.Sessions, func(s sessionGrant) bool { return s.Client == c.ID && s.Session == sid }) {
			return nil
		}
		if len(list.Sessions) >= maxSessionGrants {
			list.Sessions = list.Sessions[1:]
		}
		list.Sessions = append(list.Sessions, sessionGrant{Client: c.ID, Session: sid, Until: time.Unix(t.Grant.SessionExpires, 0),
			Account: t.Grant.Account, Guest: t.Grant.Guest, Link: t.Grant.Link, Subject: t.Grant.Subject})
		return nil
	})
}

// LoggedOut tells the clients with a back-channel logout URI that the
// user's session ended (ended nil: every session of the user, as sign
// out everywhere): those that got tokens through it, or for every
// session, any that holds a grant of the user. It sends in the
// background and returns at once.
func (p *Provider) LoggedOut(user string, ended []byte) {
	p.loggedOutAt(p.records.Key(GrantsKind, user), user, ended)
}

// LoggedOutAccount tells the clients holding a grant or a session of
// the account that every session of it ended, by the account's own
// record: found also when the name no longer leads to the account (a
// managed user being removed, or shadowed by a Caddyfile user).
func (p *Provider) LoggedOutAccount(acct *account.Account) {
	p.loggedOutAt(acct.RecordKey(GrantsKind), acct.Name, nil)
}

// loggedOutAt is LoggedOut by the grants record named key.
func (p *Provider) loggedOutAt(key, user string, ended []byte) {
	list, err := p.grantsAt(key)
	if err != nil {
		return
	}
	now, sid := p.clock.Now(), hex.EncodeToString(ended)
	var clients []string
	for _, s := range list.Sessions {
		if now.Before(s.Until) && (ended == nil || s.Session == sid) {
			clients = append(clients, s.Client)
		}
	}
	if ended == nil {
		for _, g := range list.Grants {
			clients = append(clients, g.Client)
		}
	}
	p.tell(list.subject(p, user), clients, ended)
}

// subject is the sub of the user whose record this is: its newest
// entry's.
func (l *grantList) subject(p *Provider, user string) string {
	for i := len(l.Sessions) - 1; i >= 0; i-- {
		if sub := l.Sessions[i].Subject; sub != "" {
			return sub
		}
	}
	for i := len(l.Grants) - 1; i >= 0; i-- {
		if sub := l.Grants[i].Subject; sub != "" {
			return sub
		}
	}
	return p.subjectOf(user, l.guest() != nil)
}

// guest is what the provider of a guest whose record this is said: the
// newest of its entries; nil for a configured account's.
func (l *grantList) guest() *session.Guest {
	for i := len(l.Sessions) - 1; i >= 0; i-- {
		if g := l.Sessions[i].Guest; g != nil {
			return g
		}
	}
	for i := len(l.Grants) - 1; i >= 0; i-- {
		if g := l.Grants[i].Guest; g != nil {
			return g
		}
	}
	return nil
}

// tell sends the clients with a back-channel logout URI a logout token
// of the session of the user of sub (ended nil: of every session), in
// the background.
func (p *Provider) tell(sub string, clients []string, ended []byte) {
	slices.Sort(clients)
	for _, id := range slices.Compact(clients) {
		c := p.cfg.client(id)
		if c == nil || c.BackchannelLogoutURI == "" {
			continue
		}
		token, err := p.logoutToken(c.ID, sub, ended)
		if err != nil {
			p.logger.Error("back-channel logout: no logout token", zap.String("client", c.ID), zap.Error(err))
			continue
		}
		go p.deliver(c, token)
	}
}

// SweepAfter is how long a config runs before its provider sweeps: a
// config that is only validated, or whose load fails, never does.
const SweepAfter = 10 * time.Second

// Sweep tells the clients holding a grant of what the config ended:
// the grants and sessions of a user no longer configured, or configured
// with another password (a new account ID), whose tokens this config
// refuses already. Each entry is told once: marked in the user's grants
// record, never removed (a node that starts with an older config
// announces what it refuses, and takes nothing from the newer one),
// and the node whose mark reaches the store sends. Entries that have
// ended are left alone.
func (p *Provider) Sweep(ctx context.Context) {
	if _, err := p.keys(); err != nil {
		p.logger.Warn("back-channel logouts of removed users and new passwords not sent: no signing key yet", zap.Error(err))
		return
	}
	now := p.clock.Now()
	for _, key := range p.shared.RecordKeys() {
		user, ok := account.RecordUser(GrantsKind, key)
		if !ok {
			continue
		}
		list, err := p.grantsAt(key)
		if err != nil {
			continue
		}
		guest := list.guest()
		acct, ok := p.accountOf(user, guest)
		// a record the name's account does not name is of an account
		// gone: a managed one the Caddyfile's of the name shadows, or a
		// Caddyfile user whose name a managed account took
		ok = ok && p.records.Key(GrantsKind, user) == key
		ended := func(id, link []byte, until time.Time, told bool) bool {
			return !told && now.Before(until) && (!ok || id != nil && !holds(acct, id, link))
		}
		var clients []string
		err = p.swapGrantsAt(ctx, key, func(list *grantList) error {
			clients = nil
			for i := range list.Grants {
				if e := &list.Grants[i]; ended(e.Account, e.Link, e.Until, e.Told) {
					e.Told, clients = true, append(clients, e.Client)
				}
			}
			for i := range list.Sessions {
				if s := &list.Sessions[i]; ended(s.Account, s.Link, s.Until, s.Told) {
					s.Told, clients = true, append(clients, s.Client)
				}
			}
			if len(clients) == 0 {
				return errUnchanged
			}
			return nil
		})
		switch {
		case errors.Is(err, errUnchanged):
		case err != nil:
			p.logger.Warn("back-channel logouts of a removed user or a new password not sent: the store did not answer",
				zap.String("user", user), zap.Error(err))
		default:
			slices.Sort(clients)
			clients = slices.Compact(clients)
			p.logger.Info("telling apps: the user was removed from the config or has a new password",
				zap.String("user", user), zap.Strings("clients", clients))
			p.tell(list.subject(p, user), clients, nil)
		}
	}
}

// errUnchanged leaves a record as it is.
var errUnchanged = errors.New("unchanged")

// logoutToken makes a signed logout token for the client: sub, and sid
// when one session ended.
func (p *Provider) logoutToken(clientID, sub string, ended []byte) (string, error) {
	set, err := p.keys()
	if err != nil {
		return "", err
	}
	now := p.clock.Now()
	k := set.signing(now)
	claims := map[string]any{"iss": p.cfg.Issuer, "aud": clientID, "iat": now.Unix(), "exp": now.Add(2 * time.Minute).Unix(),
		"jti": hex.EncodeToString(session.Random(16)), "sub": sub, "events": map[string]any{logoutEvent: map[string]any{}}}
	if ended != nil {
		claims["sid"] = SessionID(ended)
	}
	payload, _ := json.Marshal(claims) // plain values: never fails
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: k.private, KeyID: k.KID}},
		(&jose.SignerOptions{}).WithType("logout+jwt"))
	if err != nil {
		return "", err
	}
	signed, err := signer.Sign(payload)
	if err != nil {
		return "", err
	}
	return signed.CompactSerialize()
}

// deliver posts a logout token to the client, trying again a bounded
// number of times; a client that never answers 200 is logged.
func (p *Provider) deliver(c *Client, token string) {
	body := url.Values{"logout_token": {token}}.Encode()
	var failure string
	for attempt := range logoutAttempts {
		if attempt > 0 {
			time.Sleep(logoutBackoff << (attempt - 1))
		}
		ctx, cancel := context.WithTimeout(context.Background(), logoutTimeout)
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.BackchannelLogoutURI, strings.NewReader(body))
		if err != nil {
			cancel()
			failure = err.Error()
			break
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := p.http.Do(req)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusNoContent {
				cancel()
				p.issued(c.ID, "logout_token")
				return
			}
			failure = resp.Status
		} else {
			failure = err.Error()
		}
		cancel()
	}
	p.refused(c.ID, "logout_token_undelivered")
	p.logger.Warn("back-channel logout not delivered", zap.String("client", c.ID), zap.Int("attempts", logoutAttempts),
		zap.String("last_error", failure))
}
