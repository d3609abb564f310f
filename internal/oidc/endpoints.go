package oidc

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// discovery makes the discovery document: the library's, without what
// this provider does not serve (the device flow, the session iframe,
// implicit and hybrid flows, request objects) and naming what it adds
// (S256 alone, form_post, the sid of its ID tokens).
func (p *Provider) discovery() ([]byte, error) {
	ctx := op.ContextWithIssuer(context.Background(), p.cfg.Issuer)
	d := op.CreateDiscoveryConfig(ctx, p.op, storage{p})
	d.DeviceAuthorizationEndpoint, d.CheckSessionIframe = "", ""
	d.ResponseTypesSupported = []string{string(oidc.ResponseTypeCode)}
	d.ResponseModesSupported = []string{string(oidc.ResponseModeQuery), string(oidc.ResponseModeFormPost)}
	d.GrantTypesSupported = []oidc.GrantType{oidc.GrantTypeCode, oidc.GrantTypeRefreshToken}
	d.CodeChallengeMethodsSupported = []oidc.CodeChallengeMethod{oidc.CodeChallengeMethodS256}
	d.TokenEndpointAuthMethodsSupported = []oidc.AuthMethod{oidc.AuthMethodBasic, oidc.AuthMethodPost, oidc.AuthMethodNone}
	d.RequestParameterSupported = false
	d.RequestObjectSigningAlgValuesSupported = nil
	d.ClaimsSupported = append(d.ClaimsSupported, "sid")
	d.BackChannelLogoutSupported, d.BackChannelLogoutSessionSupported = true, true
	return json.Marshal(d)
}

// ServeHTTP serves the library's endpoints under Prefix, adding what it
// leaves out: no-store on token answers, an RFC 6750 challenge and a
// JSON error on userinfo's refusals. It reports a refused authorization
// request that cannot go back to its client (no valid client or
// redirect URI): the route answers that with an error page.
func (p *Provider) ServeHTTP(w http.ResponseWriter, r *http.Request) (refused bool) {
	switch r.URL.Path {
	case DiscoveryPath:
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "public, max-age=300")
		_, _ = w.Write(p.discoveryJSON)
		return false
	case devicePath, CallbackPath, EndSessionPath:
		// not the library's: the route serves the callback and
		// end_session, and the device flow is off
		http.NotFound(w, r)
		return false
	}
	a := &answer{ResponseWriter: w, path: r.URL.Path, issuer: p.cfg.Issuer, token: r.Header.Get("Authorization") != "" || r.URL.Query().Has("access_token")}
	p.op.ServeHTTP(a, r)
	return a.refused
}

// answer amends the library's answers on their way out.
type answer struct {
	http.ResponseWriter
	path, issuer string
	// token: the request carried an access token (userinfo)
	token bool
	// refused: an authorization request's 400 that the route answers;
	// done: the answer is written, what the library writes more is
	// dropped.
	refused, done, started bool
}

// invalidToken is userinfo's refusal of a missing, expired or revoked
// access token.
var invalidToken = []byte(`{"error":"invalid_token","error_description":"the access token is missing, expired or revoked"}` + "\n")

func (a *answer) WriteHeader(status int) {
	if a.started {
		return
	}
	a.started = true
	h := a.Header()
	switch {
	case a.path == TokenPath:
		h.Set("Cache-Control", "no-store")
		h.Set("Pragma", "no-cache")
	case a.path == UserinfoPath && (status == http.StatusUnauthorized || status == http.StatusForbidden):
		challenge := `Bearer realm="` + a.issuer + `"`
		if a.token {
			// RFC 6750 §3.1: no error code when no token came
			challenge += `, error="invalid_token"`
		}
		h.Set("WWW-Authenticate", challenge)
		h.Set("Content-Type", "application/json")
		h.Set("Cache-Control", "no-store")
		a.ResponseWriter.WriteHeader(http.StatusUnauthorized)
		_, _ = a.ResponseWriter.Write(invalidToken)
		a.done = true
		return
	case a.path == AuthorizePath && status == http.StatusBadRequest:
		a.refused, a.done = true, true
		h.Del("Content-Type")
		h.Del("X-Content-Type-Options")
		return
	}
	a.ResponseWriter.WriteHeader(status)
}

func (a *answer) Write(b []byte) (int, error) {
	if !a.started {
		a.WriteHeader(http.StatusOK)
	}
	if a.done {
		return len(b), nil
	}
	return a.ResponseWriter.Write(b)
}

// Unwrap gives http.ResponseController the writer underneath.
func (a *answer) Unwrap() http.ResponseWriter { return a.ResponseWriter }

// Logout is what end_session does.
type Logout struct {
	// End: the hint names the browser's session, which ends.
	End bool
	// Redirect is where the browser goes afterwards: a registered
	// post-logout URI of the hint's client with its state, or empty.
	Redirect string
}

// EndSession decides an end_session request: with an id_token_hint this
// provider signed (expired or not) for the browser's session (current,
// zero for none), the session ends and the browser goes on to the
// client's post_logout_redirect_uri if it is registered; otherwise
// nothing ends here and the route shows its sign-out page.
func (p *Provider) EndSession(ctx context.Context, hint, redirect, state, clientID string, current [16]byte) Logout {
	if hint == "" || current == ([16]byte{}) {
		return Logout{}
	}
	ctx = op.ContextWithIssuer(ctx, p.cfg.Issuer)
	claims, err := op.VerifyIDTokenHint[*oidc.IDTokenClaims](ctx, hint, p.op.IDTokenHintVerifier(ctx))
	if claims == nil || err != nil && !errors.As(err, new(op.IDTokenHintExpiredError)) || claims.SessionID != SessionID(current[:]) {
		return Logout{}
	}
	out := Logout{End: true}
	aud := claims.Audience
	if clientID != "" && !slices.Contains(aud, clientID) || len(aud) != 1 {
		return out
	}
	c := p.cfg.client(aud[0])
	if c == nil || redirect == "" || !slices.Contains(c.PostLogoutRedirectURIs, redirect) {
		return out
	}
	u, err := url.Parse(redirect)
	if err != nil {
		return out
	}
	if state != "" {
		q := u.Query()
		q.Set("state", state)
		u.RawQuery = q.Encode()
	}
	out.Redirect = u.String()
	return out
}
