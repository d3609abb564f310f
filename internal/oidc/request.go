package oidc

import (
	"encoding/json"
	"errors"
	"slices"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/session"
	"github.com/zitadel/oidc/v3/pkg/oidc"
)

// requestLifetime bounds the time from authorize to the login's return.
const requestLifetime = 10 * time.Minute

// CodeLifetime is how long a code may wait for its exchange.
const CodeLifetime = 60 * time.Second

// request is an authorization request. Between authorize and the login's
// return it travels sealed in its ID, stored nowhere; once a signed-in
// session grants it, it carries the grant and its ID is what the code
// seals.
type request struct {
	ClientID     string   `json:"c"`
	RedirectURI  string   `json:"r"`
	Scopes       []string `json:"s"`
	State        string   `json:"st,omitempty"`
	Nonce        string   `json:"n,omitempty"`
	Challenge    string   `json:"cc,omitempty"`
	ResponseMode string   `json:"rm,omitempty"`
	Prompt       []string `json:"p,omitempty"`
	MaxAge       *uint    `json:"ma,omitempty"`
	Created      int64    `json:"t"`
	// Hint is the sub of the request's id_token_hint: the user the
	// client expects.
	Hint string `json:"h,omitempty"`
	// ACR is the first of the request's acr_values this provider knows.
	ACR string `json:"acr,omitempty"`
	// Grant is the signed-in session's grant, once done.
	Grant *Grant `json:"g,omitempty"`

	id string
}

// Grant is what a signed-in session grants a client: who, how they
// signed in, and what ends the tokens it leads to. Its ID is the code's,
// and stays the ID of every token of the grant, rotated refresh tokens
// included: revoking it ends them all.
type Grant struct {
	ID      []byte `json:"id"`
	User    string `json:"u"`
	Subject string `json:"sub"`
	// Guest is what a guest's provider said, nil for a configured
	// account.
	Guest *session.Guest `json:"g,omitempty"`
	// Link is the tag of the account's link the session was bound to,
	// nil for none.
	Link       []byte `json:"l,omitempty"`
	Account    []byte `json:"a"`
	Counter    uint32 `json:"n"`
	Generation uint64 `json:"gen"`
	// Session and SessionExpires name the browser session: its logout
	// ends the grant's tokens, except a refresh token's.
	Session        []byte `json:"sid"`
	SessionExpires int64  `json:"se"`
	AuthTime       int64  `json:"at"`
	Factors        uint8  `json:"f"`
	Method         uint8  `json:"m,omitempty"`
	// ACR is the acr the client asked for and the sign-in met.
	ACR string `json:"acr,omitempty"`
	// Expires is the code's expiry; Until, when every token of the
	// grant has expired (the refresh token's end, or else the access
	// token's), which bounds how long its revocation is kept.
	Expires int64 `json:"e"`
	Until   int64 `json:"until"`
}

// ACRMultiFactor is the one acr value the provider knows: a sign-in
// with two factors. A client that asks for it (acr_values, a voluntary
// request) has a one-factor session of a user with a second factor
// asked to sign in again with both; the ID token says acr "mfa" when
// the sign-in had two factors, and no acr otherwise.
const ACRMultiFactor = "mfa"

// errRequest is an ID or a code that does not open or has expired.
var errRequest = errors.New("the authorization request is unknown or has expired")

// sealRequest seals an authorization request into its ID.
func sealRequest(keys *session.Keyring, r *request) string {
	data, _ := json.Marshal(r) // plain values: never fails
	return keys.SealData(session.PurposeOIDC, data, "request")
}

// openRequest opens a request's ID, refusing one older than
// requestLifetime.
func openRequest(keys *session.Keyring, id string, now time.Time) (*request, error) {
	data, _, err := keys.OpenData(session.PurposeOIDC, id, "request")
	r := new(request)
	if err != nil || json.Unmarshal(data, r) != nil || r.Grant != nil || now.Sub(time.Unix(r.Created, 0)) > requestLifetime {
		return nil, errRequest
	}
	r.id = id
	return r, nil
}

// codePrefix starts the plain text of a code, which the provider's
// crypto seals as it seals access tokens: one never opens as the other.
const codePrefix = "code."

// openCode opens a code's plain text into its granted request,
// refusing an expired one.
func openCode(plain string, now time.Time) (*request, error) {
	r := new(request)
	if len(plain) < len(codePrefix) || plain[:len(codePrefix)] != codePrefix ||
		json.Unmarshal([]byte(plain[len(codePrefix):]), r) != nil || r.Grant == nil || !now.Before(time.Unix(r.Grant.Expires, 0)) {
		return nil, errRequest
	}
	r.id = plain
	return r, nil
}

// granted is the request with the grant, its ID the code's plain text.
func (r *request) granted(g *Grant) *request {
	done := *r
	done.Grant = g
	data, _ := json.Marshal(&done) // plain values: never fails
	done.id = codePrefix + string(data)
	return &done
}

// The op.AuthRequest interface.

func (r *request) GetID() string                      { return r.id }
func (r *request) GetAudience() []string              { return []string{r.ClientID} }
func (r *request) GetClientID() string                { return r.ClientID }
func (r *request) GetNonce() string                   { return r.Nonce }
func (r *request) GetRedirectURI() string             { return r.RedirectURI }
func (r *request) GetResponseType() oidc.ResponseType { return oidc.ResponseTypeCode }
func (r *request) GetResponseMode() oidc.ResponseMode { return oidc.ResponseMode(r.ResponseMode) }
func (r *request) GetScopes() []string                { return r.Scopes }
func (r *request) GetState() string                   { return r.State }
func (r *request) Done() bool                         { return r.Grant != nil }

// GetACR is the acr the client asked for, when the sign-in met it.
func (r *request) GetACR() string {
	if r.Grant == nil {
		return ""
	}
	return r.Grant.ACR
}

// GetAMR is how the session began (RFC 8176).
func (r *request) GetAMR() []string {
	if r.Grant == nil {
		return nil
	}
	return AMR(r.Grant.Factors, session.Method(r.Grant.Method))
}

// GetAuthTime is when the session began.
func (r *request) GetAuthTime() time.Time {
	if r.Grant == nil {
		return time.Time{}
	}
	return time.Unix(r.Grant.AuthTime, 0)
}

// GetSubject is the user's sub.
func (r *request) GetSubject() string {
	if r.Grant == nil {
		return ""
	}
	return r.Grant.Subject
}

// GetCodeChallenge is the PKCE challenge, always S256.
func (r *request) GetCodeChallenge() *oidc.CodeChallenge {
	if r.Challenge == "" {
		return nil
	}
	return &oidc.CodeChallenge{Challenge: r.Challenge, Method: oidc.CodeChallengeMethodS256}
}

// Offline reports whether the request asks for a refresh token.
func (r *request) Offline() bool { return slices.Contains(r.Scopes, oidc.ScopeOfflineAccess) }

// AMR is how a session of that many factors began, as RFC 8176 names
// methods: a password (and a one-time or recovery code), or a passkey
// (a hardware-bound key, which with two factors verified its user).
func AMR(factors uint8, method session.Method) []string {
	switch {
	case method == session.MethodTrusted:
		// a password on a trusted browser: no code this time
		return []string{"pwd"}
	case method == session.MethodProvider && factors >= 2:
		return []string{"mfa"}
	case method == session.MethodProvider:
		// another provider's word: RFC 8176 has no value for it
		return nil
	case method == session.MethodPasskey && factors >= 2:
		return []string{"hwk", "user", "mfa"}
	case method == session.MethodPasskey:
		return []string{"hwk"}
	case factors >= 2:
		return []string{"pwd", "otp", "mfa"}
	}
	return []string{"pwd"}
}
