package idp

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"sync"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/session"
	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// FlowLifetime bounds a sign-in from its start to the provider's
// callback.
const FlowLifetime = 10 * time.Minute

// Error is a sign-in through a provider that cannot go on: its status
// and a one-line reason that never repeats the provider's or the
// client's input.
type Error struct {
	Status int
	Reason string
	// Cause is what went wrong with the provider, for the log.
	Cause error
	// Refused: the provider refused what the client brought (a code, an
	// ID token), which counts as a failed login of the client; not a
	// provider that is down.
	Refused bool
}

func (e *Error) Error() string { return e.Reason }

// fail is an Error.
func fail(status int, reason string) *Error { return &Error{Status: status, Reason: reason} }

// Service runs the sign-ins through the configured providers.
type Service struct {
	providers []*Provider
	keys      *session.Keyring
	clock     *session.Clock
	client    *http.Client

	// discovered holds each OpenID Connect provider's discovery, once it
	// answered; failed, when its last try failed
	mu         sync.Mutex
	discovered map[string]*discovery
	failed     map[string]time.Time
}

// retryDiscovery is how long a provider whose discovery failed is not
// asked again: starting sign-ins must not hammer it.
const retryDiscovery = 10 * time.Second

// discovery is what an OpenID Connect provider's discovery document
// says.
type discovery struct {
	*gooidc.Provider
	// issParam: the provider sends `iss` with its answers (RFC 9207)
	issParam bool
}

// New makes the service of validated providers.
func New(providers []Provider, keys *session.Keyring, clock *session.Clock) *Service {
	s := &Service{keys: keys, clock: clock, client: &http.Client{Timeout: 10 * time.Second, Transport: capped{http.DefaultTransport}},
		discovered: map[string]*discovery{}, failed: map[string]time.Time{}}
	for i := range providers {
		s.providers = append(s.providers, &providers[i])
	}
	return s
}

// Providers are the providers in config order.
func (s *Service) Providers() []*Provider { return s.providers }

// Provider is the provider of the name.
func (s *Service) Provider(name string) (*Provider, bool) {
	i := slices.IndexFunc(s.providers, func(p *Provider) bool { return p.Name == name })
	if i < 0 {
		return nil, false
	}
	return s.providers[i], true
}

// Flow is a sign-in on its way through a provider: sealed into the
// browser's cookie at the start, opened at the callback.
type Flow struct {
	// Provider names the provider and Issuer is its issuer (GitHub's
	// authorization endpoint) at the start: a callback after a config
	// change that moved the provider elsewhere is refused.
	Provider string `json:"p"`
	Issuer   string `json:"i"`
	State    string `json:"s"`
	Nonce    string `json:"n"`
	Verifier string `json:"v"`
	// Next is where the browser goes once signed in.
	Next    string `json:"x,omitempty"`
	Expires int64  `json:"e"`
}

// stateForm is what a flow's state looks like: 32 random bytes,
// base64url.
var stateForm = regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`)

// FlowKey names a flow's cookie by the start of its state, so that
// sign-ins started in several tabs each keep their own, and a callback
// with another state never touches them; ok is false for a state that
// no flow has.
func FlowKey(state string) (key string, ok bool) {
	if !stateForm.MatchString(state) {
		return "", false
	}
	return state[:12], true
}

// Key is the flow's cookie's key (see FlowKey).
func (f *Flow) Key() string { return f.State[:12] }

// ID names the flow for its single use: a digest of its state.
func (f *Flow) ID() [16]byte {
	sum := sha256.Sum256([]byte("miniapp sign-in-with\x00" + f.State))
	return [16]byte(sum[:16])
}

// ExpiresAt is when the flow ends.
func (f *Flow) ExpiresAt() time.Time { return time.Unix(f.Expires, 0) }

// Start is a sign-in's start: the key and value of the cookie that
// carries its flow, and the provider's authorization URL the browser
// goes to.
type Start struct {
	Key, Cookie, URL string
}

// Begin starts a sign-in through the provider, coming back to callback
// (this site's `/login/with/<name>/callback`, which the flow is bound
// to) and then to next.
func (s *Service) Begin(ctx context.Context, p *Provider, callback, next string) (Start, error) {
	conf, _, err := s.oauth(ctx, p, callback)
	if err != nil {
		return Start{}, err
	}
	f := Flow{Provider: p.Name, Issuer: p.issuer(), State: random(), Nonce: random(), Verifier: oauth2.GenerateVerifier(), Next: next,
		Expires: s.clock.Now().Add(FlowLifetime).Unix()}
	opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(f.Verifier)}
	if !p.IsGitHub() {
		opts = append(opts, gooidc.Nonce(f.Nonce))
	}
	data, _ := json.Marshal(&f) // plain values: never fails
	return Start{Key: f.Key(), Cookie: s.keys.SealData(session.PurposeSignInWith, data, callback), URL: conf.AuthCodeURL(f.State, opts...)}, nil
}

// Callback is the provider's answer at the callback, as the route read
// its query.
type Callback struct {
	Code, State, Iss, Error string
}

// errorCode is what an OAuth error code looks like.
var errorCode = regexp.MustCompile(`^[a-z_]{1,40}$`)

// Open opens the flow of a callback from its cookie value and checks
// that the callback answers it: the same provider (the flow is bound to
// the callback's path, RFC 9700 §4.4), the same state, and the
// provider's issuer where it sends one (RFC 9207). A provider's error
// is refused with its reason.
func (s *Service) Open(ctx context.Context, p *Provider, callback, sealed string, cb Callback) (*Flow, error) {
	data, _, err := s.keys.OpenData(session.PurposeSignInWith, sealed, callback)
	f := new(Flow)
	if sealed == "" || err != nil || json.Unmarshal(data, f) != nil || f.Provider != p.Name || f.Issuer != p.issuer() ||
		!s.clock.Now().Before(f.ExpiresAt()) {
		return nil, fail(http.StatusBadRequest, "the sign-in has expired or was started elsewhere; start again")
	}
	if subtle.ConstantTimeCompare([]byte(cb.State), []byte(f.State)) != 1 {
		return nil, fail(http.StatusBadRequest, "the answer does not belong to this sign-in; start again")
	}
	if cb.Error != "" {
		if cb.Error == "access_denied" {
			return nil, fail(http.StatusForbidden, p.Label+" did not sign you in: refused or cancelled")
		}
		if errorCode.MatchString(cb.Error) {
			return nil, fail(http.StatusBadRequest, p.Label+" did not sign you in ("+cb.Error+")")
		}
		return nil, fail(http.StatusBadRequest, p.Label+" did not sign you in")
	}
	if cb.Code == "" {
		return nil, fail(http.StatusBadRequest, "the answer has no code; start again")
	}
	if !p.IsGitHub() {
		d, err := s.discover(ctx, p)
		if err != nil {
			return nil, err
		}
		if cb.Iss != "" && cb.Iss != p.Issuer || cb.Iss == "" && d.issParam {
			return nil, fail(http.StatusBadRequest, "the answer does not come from "+p.Label+"'s issuer; start again")
		}
	}
	return f, nil
}

// oauth is the provider's OAuth config for a callback, with the
// discovery of an OpenID Connect provider.
func (s *Service) oauth(ctx context.Context, p *Provider, callback string) (*oauth2.Config, *discovery, error) {
	conf := &oauth2.Config{ClientID: p.ClientID, ClientSecret: p.ClientSecret, RedirectURL: callback, Scopes: p.Scopes,
		Endpoint: oauth2.Endpoint{AuthURL: p.AuthURL, TokenURL: p.TokenURL}}
	if p.IsGitHub() {
		return conf, nil, nil
	}
	d, err := s.discover(ctx, p)
	if err != nil {
		return nil, nil, err
	}
	found := d.Endpoint()
	conf.Endpoint.AuthURL, conf.Endpoint.TokenURL = or(p.AuthURL, found.AuthURL), or(p.TokenURL, found.TokenURL)
	return conf, d, nil
}

// discover reads an OpenID Connect provider's discovery document once
// it answers; a provider that does not is tried again at the next
// sign-in.
func (s *Service) discover(ctx context.Context, p *Provider) (*discovery, error) {
	now := s.clock.Now()
	s.mu.Lock()
	d, failed := s.discovered[p.Name], s.failed[p.Name]
	s.mu.Unlock()
	if d != nil {
		return d, nil
	}
	if now.Sub(failed) < retryDiscovery {
		return nil, unavailable(p, errors.New("its discovery failed moments ago"))
	}
	d, err := s.fetchDiscovery(ctx, p)
	s.mu.Lock()
	if err != nil {
		s.failed[p.Name] = now
	} else {
		s.discovered[p.Name] = d
	}
	s.mu.Unlock()
	return d, err
}

// fetchDiscovery reads an OpenID Connect provider's discovery document,
// whose endpoints must be https (or http on loopback).
func (s *Service) fetchDiscovery(ctx context.Context, p *Provider) (*discovery, error) {
	found, err := gooidc.NewProvider(s.context(ctx), p.Issuer)
	if err != nil {
		return nil, unavailable(p, err)
	}
	var extra struct {
		IssParam bool   `json:"authorization_response_iss_parameter_supported"`
		Keys     string `json:"jwks_uri"`
	}
	_ = found.Claims(&extra) // a document that parsed: never fails
	for _, u := range []string{found.Endpoint().AuthURL, found.Endpoint().TokenURL, extra.Keys} {
		if !secure(u) {
			return nil, unavailable(p, fmt.Errorf("its discovery names an endpoint that is not https: %q", u))
		}
	}
	return &discovery{Provider: found, issParam: extra.IssParam}, nil
}

// capped is a transport whose answers' bodies end with an error past
// maxBodyBytes: a provider's discovery, keys, tokens and user are small,
// and go-oidc reads them whole.
type capped struct{ base http.RoundTripper }

func (c capped) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := c.base.RoundTrip(r)
	if err == nil {
		resp.Body = &cappedBody{ReadCloser: resp.Body, left: maxBodyBytes}
	}
	return resp, err
}

// cappedBody is a body that may hold left bytes more.
type cappedBody struct {
	io.ReadCloser
	left int64
}

// errTooLarge is an answer larger than maxBodyBytes.
var errTooLarge = errors.New("the provider's answer is too large")

func (b *cappedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, errTooLarge
	}
	n, err := b.ReadCloser.Read(p[:min(int64(len(p)), b.left)])
	b.left -= int64(n)
	return n, err
}

// unavailable is a provider that did not answer as it should.
func unavailable(p *Provider, cause error) *Error {
	return &Error{Status: http.StatusBadGateway, Reason: p.Label + " did not answer as expected; try again later", Cause: cause}
}

// context is ctx with the service's HTTP client, which oauth2 and
// go-oidc use.
func (s *Service) context(ctx context.Context) context.Context {
	return context.WithValue(ctx, oauth2.HTTPClient, s.client)
}

// random is 32 random bytes, base64url.
func random() string { return base64.RawURLEncoding.EncodeToString(session.Random(32)) }
