package oidc

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"regexp"
	"slices"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/session"
	"github.com/caddy-miniapp/miniapp/internal/web"
	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// storage is the library's storage over the provider: requests travel
// sealed in their IDs and codes; a code's single use, a grant's
// revocation and a refresh token's rotation go to the realm's store.
type storage struct{ p *Provider }

// errNotLive is a token that expired, was revoked, or whose account
// changed.
var errNotLive = errors.New("the token is not valid")

// challengeForm is an S256 challenge: a SHA-256 in base64url.
var challengeForm = regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`)

// MaxState bounds an authorization request's state and nonce, which
// travel sealed in its ID.
const MaxState = 1024

// CreateAuthRequest takes an authorization request the library checked
// against its client (redirect URI, scopes, the id_token_hint whose sub
// it passes), refusing what the library would allow: any response type
// but code, any PKCE method but S256, and a public client without a
// challenge.
func (s storage) CreateAuthRequest(_ context.Context, ar *oidc.AuthRequest, hintSub string) (op.AuthRequest, error) {
	c := s.p.cfg.client(ar.ClientID)
	switch {
	case c == nil:
		return nil, oidc.ErrInvalidRequestRedirectURI().WithDescription("unknown client")
	case ar.ResponseType != oidc.ResponseTypeCode:
		return nil, (&oidc.Error{ErrorType: "unsupported_response_type", Description: "response_type must be code"})
	case ar.CodeChallenge == "" && c.Public():
		return nil, oidc.ErrInvalidRequest().WithDescription("a public client must use PKCE (code_challenge with S256)")
	case ar.CodeChallenge != "" && ar.CodeChallengeMethod != oidc.CodeChallengeMethodS256:
		return nil, oidc.ErrInvalidRequest().WithDescription("code_challenge_method must be S256")
	case ar.ResponseMode != "" && ar.ResponseMode != oidc.ResponseModeQuery && ar.ResponseMode != oidc.ResponseModeFormPost:
		return nil, oidc.ErrInvalidRequest().WithDescription("response_mode must be query or form_post")
	case ar.CodeChallenge != "" && !challengeForm.MatchString(ar.CodeChallenge):
		return nil, oidc.ErrInvalidRequest().WithDescription("code_challenge must be 43 base64url characters (S256)")
	case len(ar.State) > MaxState || len(ar.Nonce) > MaxState:
		return nil, oidc.ErrInvalidRequest().WithDescription("state and nonce must be at most 1024 bytes")
	}
	// the request travels in its ID through the login page's next:
	// each scope and prompt once, and only the prompts that mean
	// something here
	scopes := slices.Compact(slices.Sorted(slices.Values(ar.Scopes)))
	prompt := slices.DeleteFunc(slices.Clone(ar.Prompt), func(p string) bool { return p != oidc.PromptNone && p != oidc.PromptLogin })
	r := &request{ClientID: ar.ClientID, RedirectURI: ar.RedirectURI, Scopes: scopes, State: ar.State, Nonce: ar.Nonce,
		Challenge: ar.CodeChallenge, ResponseMode: string(ar.ResponseMode), Prompt: slices.Compact(prompt), MaxAge: ar.MaxAge,
		Created: s.p.clock.Now().Unix(), Hint: hintSub}
	if slices.Contains(ar.ACRValues, ACRMultiFactor) {
		r.ACR = ACRMultiFactor
	}
	r.id = sealRequest(s.p.seal, r)
	if len(CallbackPath)+len("?id=")+len(r.id) > web.MaxNextLen {
		// it comes back through the login page's next
		return nil, oidc.ErrInvalidRequest().WithDescription("the authorization request is too large")
	}
	return r, nil
}

// AuthRequestByID opens a request's ID.
func (s storage) AuthRequestByID(_ context.Context, id string) (op.AuthRequest, error) {
	return openRequest(s.p.seal, id, s.p.clock.Now())
}

// AuthRequestByCode opens a code that was not used before; it is used
// up only once the library has checked the client and the verifier (see
// useCode), so that a wrong verifier or secret does not burn it.
func (s storage) AuthRequestByCode(ctx context.Context, code string) (op.AuthRequest, error) {
	data, _, err := s.p.seal.OpenData(session.PurposeOIDC, code, tokenName)
	if err != nil {
		s.p.refused("", "code_invalid")
		return nil, errRequest
	}
	r, err := openCode(string(data), s.p.clock.Now())
	if err != nil {
		s.p.refused("", "code_invalid")
		return nil, err
	}
	if s.p.shared.RevokedID(usedID(r.Grant.ID), time.Unix(r.Grant.Expires, 0)) {
		return nil, s.p.reused(ctx, r)
	}
	return r, nil
}

// useCode uses up a code whose client and verifier the library checked:
// a second use, here or on another node, is refused and revokes what
// the first use issued. Redis counts the code's uses for every node at
// once; storage counts on this node, and a revocation of the code tells
// the others within the sync window.
func (p *Provider) useCode(ctx context.Context, r *request) error {
	g := r.Grant
	used := usedID(g.ID)
	n, _, err := p.shared.Strike(ctx, "oidc-code:"+hex.EncodeToString(g.ID), 1, 2*CodeLifetime)
	if err != nil {
		return oidc.ErrServerError().WithDescription("the store did not answer")
	}
	if n > 1 || p.shared.RevokedID(used, time.Unix(g.Expires, 0)) {
		return p.reused(ctx, r)
	}
	if !p.shared.StrikesShared() {
		p.shared.Revoke(ctx, used, time.Unix(g.Expires, 0))
	}
	return nil
}

// reused refuses a code used before and revokes its grant (RFC 6749
// §4.1.2).
func (p *Provider) reused(ctx context.Context, r *request) error {
	p.shared.Revoke(ctx, [16]byte(r.Grant.ID), time.Unix(r.Grant.Until, 0))
	p.refused(r.ClientID, "code_reused")
	return oidc.ErrInvalidGrant().WithDescription("the code was used before: what it gave is revoked")
}

// usedID is the revocation-list ID that marks a code used, apart from
// the grant's own ID, whose revocation ends the tokens.
func usedID(grant []byte) [16]byte {
	sum := sha256.Sum256(append([]byte("used code\x00"), grant...))
	return [16]byte(sum[:16])
}

// SaveAuthCode keeps nothing: the code holds its request.
func (storage) SaveAuthCode(context.Context, string, string) error { return nil }

// DeleteAuthRequest keeps nothing: the request lives in its ID.
func (storage) DeleteAuthRequest(context.Context, string) error { return nil }

// CreateAccessToken makes an access token of a code's grant.
func (s storage) CreateAccessToken(ctx context.Context, req op.TokenRequest) (string, time.Time, error) {
	t, err := s.p.accessToken(ctx, req)
	if err != nil {
		return "", time.Time{}, err
	}
	if err := s.p.noteSession(ctx, t); err != nil {
		return "", time.Time{}, oidc.ErrServerError().WithDescription("the store did not answer")
	}
	s.p.issued(t.ClientID, "access_token")
	return sealToken(s.p.seal, accessName, t), time.Unix(t.Expires, 0), nil
}

// CreateAccessAndRefreshTokens makes an access token and a refresh
// token: for a code, a new offline grant in the user's grants; for a
// refresh token, its next rotation, which uses it up (presenting it
// again revokes the grant).
func (s storage) CreateAccessAndRefreshTokens(ctx context.Context, req op.TokenRequest, _ string) (string, string, time.Time, error) {
	t, err := s.p.accessToken(ctx, req)
	if err != nil {
		return "", "", time.Time{}, err
	}
	refresh := *t
	refresh.Expires = t.Grant.Until
	if _, first := req.(*request); first {
		err = s.p.addGrant(ctx, &refresh)
		if err == nil {
			err = s.p.noteSession(ctx, t)
		}
	} else {
		err = s.p.useGrant(ctx, &refresh)
	}
	if err != nil {
		return "", "", time.Time{}, err
	}
	t.Rotation = refresh.Rotation
	s.p.issued(t.ClientID, "access_token")
	return sealToken(s.p.seal, accessName, t), sealToken(s.p.seal, refreshName, &refresh), time.Unix(t.Expires, 0), nil
}

// TokenRequestByRefreshToken opens a live refresh token; whether it is
// the grant's current rotation is checked as it is used, once its client
// has authenticated.
func (s storage) TokenRequestByRefreshToken(_ context.Context, value string) (op.RefreshTokenRequest, error) {
	t, ok := openRefresh(s.p.seal, value)
	if !ok || !s.p.live(t, s.p.clock.Now()) {
		if ok {
			s.p.refused(t.ClientID, "refresh_token_ended")
		} else {
			s.p.refused("", "refresh_token_invalid")
		}
		return nil, op.ErrInvalidRefreshToken
	}
	return &refreshRequest{token: t, subject: t.Grant.Subject}, nil
}

// TerminateSession is never called: the module serves end_session.
func (storage) TerminateSession(context.Context, string, string) error { return nil }

// RevokeToken revokes the grant of a refresh token (as
// GetRefreshTokenInfo named it) or an access token of the client. The
// library passes a value that it could not open as it came, so only an
// authentic ID counts.
func (s storage) RevokeToken(ctx context.Context, id, _, clientID string) *oidc.Error {
	t, ok := openRefresh(s.p.seal, id)
	if !ok {
		t, ok = s.p.opened.open(s.p.seal, id)
	}
	if !ok || t.ClientID != clientID {
		// RFC 7009: an invalid token needs no revocation
		return nil
	}
	if err := s.p.revoke(ctx, t); err != nil {
		return oidc.ErrServerError().WithDescription("the store did not answer")
	}
	return nil
}

// GetRefreshTokenInfo names a refresh token of the client for its
// revocation: its subject, and the sealed token itself as its ID.
func (s storage) GetRefreshTokenInfo(_ context.Context, clientID, value string) (string, string, error) {
	t, ok := openRefresh(s.p.seal, value)
	if !ok || t.ClientID != clientID {
		return "", "", op.ErrInvalidRefreshToken
	}
	return t.Grant.Subject, value, nil
}

// SigningKey is the key that signs now.
func (s storage) SigningKey(ctx context.Context) (op.SigningKey, error) {
	set, err := s.p.keySet(ctx)
	if err != nil {
		return nil, err
	}
	return set.signing(s.p.clock.Now()), nil
}

// SignatureAlgorithms is RS256 alone.
func (storage) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	return []jose.SignatureAlgorithm{jose.RS256}, nil
}

// KeySet lists the keys that sign, will sign, or signed tokens still
// valid.
func (s storage) KeySet(ctx context.Context) ([]op.Key, error) {
	set, err := s.p.keySet(ctx)
	if err != nil {
		return nil, err
	}
	listed := set.listed(s.p.clock.Now())
	keys := make([]op.Key, len(listed))
	for i := range listed {
		keys[i] = publicKey{&listed[i]}
	}
	return keys, nil
}

// GetClientByClientID is a configured client.
func (s storage) GetClientByClientID(_ context.Context, id string) (op.Client, error) {
	c := s.p.cfg.client(id)
	if c == nil {
		return nil, errors.New("unknown client")
	}
	return client{c: c, lifetime: s.p.idLifetime()}, nil
}

// AuthorizeClientIDSecret checks a confidential client's secret in
// constant time.
func (s storage) AuthorizeClientIDSecret(_ context.Context, id, secret string) error {
	want, ok := s.p.secrets[id]
	got := sha256.Sum256([]byte(secret))
	if !ok || subtle.ConstantTimeCompare(want[:], got[:]) != 1 {
		s.p.refused(id, "client_secret")
		return errors.New("wrong client secret")
	}
	return nil
}

// SetUserinfoFromScopes leaves an ID token's claims to
// SetUserinfoFromRequest, which has its grant.
func (storage) SetUserinfoFromScopes(context.Context, *oidc.UserInfo, string, string, []string) error {
	return nil
}

// SetUserinfoFromToken fills userinfo's claims for a live access token.
func (s storage) SetUserinfoFromToken(_ context.Context, info *oidc.UserInfo, id, _, _ string) error {
	t, ok := s.p.opened.open(s.p.seal, id)
	if !ok || !s.p.live(t, s.p.clock.Now()) {
		return errNotLive
	}
	return s.p.claims(info, &t.Grant, t.Scopes)
}

// SetIntrospectionFromToken describes a live access token to its own
// client.
func (s storage) SetIntrospectionFromToken(_ context.Context, resp *oidc.IntrospectionResponse, id, _, clientID string) error {
	t, ok := s.p.opened.open(s.p.seal, id)
	if !ok || t.ClientID != clientID || !s.p.live(t, s.p.clock.Now()) {
		return errNotLive
	}
	info := new(oidc.UserInfo)
	if err := s.p.claims(info, &t.Grant, t.Scopes); err != nil {
		return err
	}
	resp.SetUserInfo(info)
	resp.Active, resp.Scope, resp.ClientID, resp.TokenType = true, t.Scopes, t.ClientID, oidc.BearerToken
	resp.Expiration, resp.AuthTime, resp.Audience = oidc.FromTime(time.Unix(t.Expires, 0)), oidc.FromTime(time.Unix(t.Grant.AuthTime, 0)), []string{t.ClientID}
	return nil
}

// GetPrivateClaimsFromScopes adds nothing: access tokens are opaque.
func (storage) GetPrivateClaimsFromScopes(context.Context, string, string, []string) (map[string]any, error) {
	return nil, nil
}

// GetKeyByIDAndClientID refuses: clients authenticate with secrets.
func (storage) GetKeyByIDAndClientID(context.Context, string, string) (*jose.JSONWebKey, error) {
	return nil, errors.New("private_key_jwt is not supported")
}

// ValidateJWTProfileScopes refuses: the JWT profile grant is off.
func (storage) ValidateJWTProfileScopes(context.Context, string, []string) ([]string, error) {
	return nil, errors.New("the JWT profile grant is not supported")
}

// Health is always good: the store answers for itself.
func (storage) Health(context.Context) error { return nil }

// refreshRequest is a refresh token presented at the token endpoint.
type refreshRequest struct {
	token   *token
	subject string
}

func (r *refreshRequest) GetAMR() []string {
	return AMR(r.token.Grant.Factors, session.Method(r.token.Grant.Method))
}
func (r *refreshRequest) GetAudience() []string  { return []string{r.token.ClientID} }
func (r *refreshRequest) GetAuthTime() time.Time { return time.Unix(r.token.Grant.AuthTime, 0) }
func (r *refreshRequest) GetClientID() string    { return r.token.ClientID }
func (r *refreshRequest) GetScopes() []string    { return r.token.Scopes }
func (r *refreshRequest) GetSubject() string     { return r.subject }
func (r *refreshRequest) SetCurrentScopes(s []string) {
	r.token.Scopes = slices.DeleteFunc(slices.Clone(r.token.Scopes), func(scope string) bool { return !slices.Contains(s, scope) })
}
