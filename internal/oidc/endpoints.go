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
	d.ACRValuesSupported = []string{ACRMultiFactor}
	d.BackChannelLogoutSupported, d.BackChannelLogoutSessionSupported = true, true
	return json.Marshal(d)
}

// ServeHTTP serves the library's endpoints under Prefix, adding what it
// leaves out (no-store on token answers), and userinfo. It reports a refused authorization
// request that cannot go back to its client (no valid client or
// redirect URI): the route answers that with an error page.
func (p *Provider) ServeHTTP(w http.ResponseWriter, r *http.Request) (refused bool) {
	switch r.URL.Path {
	case DiscoveryPath:
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "public, max-age=300")
		_, _ = w.Write(p.discoveryJSON)
		return false
	case UserinfoPath:
		p.userinfo.ServeHTTP(w, r)
		return false
	case devicePath, CallbackPath, EndSessionPath:
		// not the library's: the route serves the callback and
		// end_session, and the device flow is off
		http.NotFound(w, r)
		return false
	}
	a := &answer{ResponseWriter: w, path: r.URL.Path}
	if r.URL.Path == TokenPath {
		// read here so that a refusal is counted by its client; the
		// library finds the form read
		_ = r.ParseForm()
		a.client = r.PostForm.Get("client_id")
		if id, _, ok := r.BasicAuth(); ok {
			a.client = id
		}
	}
	p.op.ServeHTTP(a, r)
	if a.status >= http.StatusBadRequest && a.path == TokenPath {
		p.refused(a.client, "token_"+tokenError(a.body))
	}
	return a.refused
}

// tokenErrors are the token endpoint's error codes (RFC 6749 §5.2), as
// the refusals' reasons name them.
var tokenErrors = []string{"invalid_request", "invalid_client", "invalid_grant", "unauthorized_client", "unsupported_grant_type",
	"invalid_scope", "server_error"}

// tokenError is the error code of a token endpoint's JSON refusal, one
// of tokenErrors or "other".
func tokenError(body []byte) string {
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(body, &e) != nil || !slices.Contains(tokenErrors, e.Error) {
		return "other"
	}
	return e.Error
}

// serveUserinfo answers userinfo (OpenID Connect Core §5.3) for a live
// access token, which the library reads from the request (a bearer
// header, or a form's access_token). The claims are marshalled here as
// one typed value: the library's answer marshals its claims three times
// over to merge the groups array in, most of what userinfo cost. A
// refusal is RFC 6750's: 401, a Bearer challenge (with an error only
// when a token came) and a JSON error.
func (p *Provider) serveUserinfo(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, HEAD, POST")
		writeJSON(w, http.StatusMethodNotAllowed, methodNotAllowed)
		return
	}
	claims, came, err := p.userinfoOf(r)
	if err != nil {
		challenge := `Bearer realm="` + p.cfg.Issuer + `"`
		if came {
			// RFC 6750 §3.1: no error code when no token came
			challenge += `, error="invalid_token"`
		}
		w.Header().Set("WWW-Authenticate", challenge)
		writeJSON(w, http.StatusUnauthorized, invalidToken)
		return
	}
	data, _ := json.Marshal(claims) // plain values: never fails
	writeJSON(w, http.StatusOK, append(data, '\n'))
}

// userinfoOf are the claims of the request's live access token; came
// tells whether the request carried a token at all.
func (p *Provider) userinfoOf(r *http.Request) (c Claims, came bool, err error) {
	sealed, err := op.ParseUserinfoRequest(r, p.op.Decoder())
	if err != nil || sealed == "" {
		// a header of another scheme (Basic) is no token: RFC 6750 §3.1
		return Claims{}, false, errNotLive
	}
	plain, err := crypto{p}.Decrypt(sealed)
	if err != nil {
		return Claims{}, true, err
	}
	t, ok := p.splitAccess(plain)
	if !ok {
		return Claims{}, true, errNotLive
	}
	c, err = p.claimsOf(&t.Grant, t.Scopes)
	return c, true, err
}

// writeJSON writes a JSON answer that is never stored.
func writeJSON(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// invalidToken is userinfo's refusal of a missing, expired or revoked
// access token; methodNotAllowed its refusal of another method.
var (
	invalidToken     = []byte(`{"error":"invalid_token","error_description":"the access token is missing, expired or revoked"}` + "\n")
	methodNotAllowed = []byte(`{"error":"invalid_request","error_description":"method not allowed"}` + "\n")
)

// answer amends the library's answers on their way out.
type answer struct {
	http.ResponseWriter
	path string
	// refused: an authorization request's 400 that the route answers;
	// done: the answer is written, what the library writes more is
	// dropped.
	refused, done, started bool
	// status is the answer's status; client the token request's client
	// and body the start of a refusal's body, for the refusal's count
	status int
	client string
	body   []byte
}

func (a *answer) WriteHeader(status int) {
	if a.started {
		return
	}
	a.started, a.status = true, status
	h := a.Header()
	switch {
	case a.path == TokenPath:
		h.Set("Cache-Control", "no-store")
		h.Set("Pragma", "no-cache")
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
	if a.status >= http.StatusBadRequest && len(a.body) < 1024 {
		a.body = append(a.body, b[:min(len(b), 1024-len(a.body))]...)
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
