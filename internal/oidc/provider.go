package oidc

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"hash/maphash"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/account"
	"github.com/caddy-miniapp/miniapp/internal/records"
	"github.com/caddy-miniapp/miniapp/internal/session"
	"github.com/caddy-miniapp/miniapp/store"
	"github.com/rs/cors"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
	"go.uber.org/zap"
)

// Prefix starts the path of every endpoint but discovery.
const Prefix = "/miniapp/oidc/"

// The endpoints' paths.
const (
	DiscoveryPath  = oidc.DiscoveryEndpoint
	AuthorizePath  = Prefix + "authorize"
	CallbackPath   = AuthorizePath + "/callback"
	TokenPath      = Prefix + "token"
	UserinfoPath   = Prefix + "userinfo"
	RevokePath     = Prefix + "revoke"
	IntrospectPath = Prefix + "introspect"
	EndSessionPath = Prefix + "end_session"
	devicePath     = Prefix + "device_authorization"
)

// Credentialed reports whether requests to the path carry tokens,
// codes or secrets: never in a query, which Caddy's access log records.
func Credentialed(path string) bool {
	return path == TokenPath || path == UserinfoPath || path == RevokePath || path == IntrospectPath
}

// Serves reports whether the provider answers the path: discovery, or
// a path under Prefix.
func Serves(path string) bool {
	return path == DiscoveryPath || strings.HasPrefix(path, Prefix)
}

// scopes are the scopes the provider knows.
var scopes = []string{oidc.ScopeOpenID, oidc.ScopeProfile, oidc.ScopeEmail, scopeGroups, oidc.ScopeOfflineAccess}

// scopeGroups asks for the groups claim.
const scopeGroups = "groups"

// Provider is a realm's OpenID Connect provider: the library's, over
// the realm's accounts, store and keys.
type Provider struct {
	cfg      *Config
	realm    string
	accounts *account.Set
	shared   *store.Realm
	records  *records.Store
	seal     *session.Keyring
	clock    *session.Clock
	// guests is the account of a guest the config admits, nil without
	// guests
	guests func(user string, g *session.Guest) (*account.Account, bool)
	// secrets are the confidential clients' secrets, hashed
	secrets map[string][32]byte
	op      *op.Provider
	// userinfo serves userinfo, with the library's CORS
	userinfo http.Handler
	keyCache keyCache
	// discoveryJSON is the discovery document, made once
	discoveryJSON []byte
	logger        *zap.Logger
	// opened are the access tokens opened lately
	opened accessCache
	// http sends back-channel logouts
	http    *http.Client
	counter Counter
}

// Counter counts the provider's events by client (a configured ID, or
// "unknown"): what it issued (code, access_token, refresh_token,
// logout_token) and what it refused, by reason.
type Counter interface {
	Issued(client, kind string)
	Refused(client, reason string)
}

// Options are the realm's parts the provider works over.
type Options struct {
	// Realm names the realm; Accounts are its accounts.
	Realm    string
	Accounts *account.Set
	// Guests is the account of a guest (a user named <provider>:<id>
	// with what its provider said) while the config admits it; nil
	// without a guests block.
	Guests func(user string, g *session.Guest) (*account.Account, bool)
	// Shared is the realm's store, Records its sealed records.
	Shared  *store.Realm
	Records *records.Store
	// Keys seal the requests, codes and tokens; Clock tells the time.
	Keys  *session.Keyring
	Clock *session.Clock
	// Logger logs back-channel logouts not delivered; Counter counts.
	Logger  *zap.Logger
	Counter Counter
}

// New makes the provider of a validated config, and the realm's first
// signing key when it has none.
func New(ctx context.Context, cfg *Config, o Options) (*Provider, error) {
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	p := &Provider{cfg: cfg, realm: o.Realm, accounts: o.Accounts, shared: o.Shared, records: o.Records, seal: o.Keys, clock: o.Clock,
		guests: o.Guests, secrets: map[string][32]byte{}, logger: o.Logger, counter: o.Counter,
		http:   &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		opened: accessCache{seed: maphash.MakeSeed()}}
	var origins []string
	for _, c := range cfg.Clients {
		if !c.Public() {
			p.secrets[c.ID] = sha256.Sum256([]byte(c.Secret))
		}
		for _, uri := range c.RedirectURIs {
			origin := ""
			if u, err := url.Parse(uri); err == nil {
				origin = strings.ToLower(u.Scheme + "://" + u.Host)
			}
			if strings.HasPrefix(origin, "http") && !slices.Contains(origins, origin) {
				origins = append(origins, origin)
			}
		}
	}
	if err := p.ensureKey(ctx); err != nil {
		// signing waits for the store: keySet tries again
		p.logger.Warn("no OpenID Connect signing key yet: the store did not answer; trying again at the first token", zap.Error(err))
	}
	// cross-origin requests from the clients' own origins, matched
	// exactly, without credentials (the library's default reflects any
	// origin with them; rs/cors takes an empty list for every origin and
	// '*' in one as a wildcard)
	corsOptions := &cors.Options{
		AllowOriginFunc: func(origin string) bool { return slices.Contains(origins, origin) },
		AllowedMethods:  []string{http.MethodGet, http.MethodHead, http.MethodPost},
		AllowedHeaders:  []string{"Accept", "Authorization", "Content-Type"},
	}
	p.userinfo = cors.New(*corsOptions).Handler(http.HandlerFunc(p.serveUserinfo))
	config := &op.Config{
		CodeMethodS256:        true,
		AuthMethodPost:        true,
		GrantTypeRefreshToken: true,
		SupportedScopes:       scopes,
		SupportedClaims: []string{"sub", "aud", "exp", "iat", "iss", "auth_time", "nonce", "acr", "amr", "at_hash", "c_hash", "azp",
			"preferred_username", "name", "email", "email_verified", "groups"},
	}
	iss, _ := url.Parse(cfg.Issuer)
	opts := []op.Option{
		op.WithCrypto(crypto{p}),
		op.WithCustomEndpoints(endpoint(AuthorizePath), endpoint(TokenPath), endpoint(UserinfoPath), endpoint(RevokePath),
			endpoint(EndSessionPath), endpoint(Prefix+"keys")),
		op.WithCustomIntrospectionEndpoint(endpoint(IntrospectPath)),
		op.WithCustomDeviceAuthorizationEndpoint(endpoint(devicePath)),
		op.WithCORSOptions(corsOptions),
	}
	if iss.Scheme == "http" {
		// Validate allows http on loopback addresses only
		opts = append(opts, op.WithAllowInsecure())
	}
	var err error
	if p.op, err = op.NewProvider(config, storage{p}, op.StaticIssuer(cfg.Issuer), opts...); err != nil {
		return nil, err
	}
	if p.discoveryJSON, err = p.discovery(); err != nil {
		return nil, err
	}
	return p, nil
}

// issued counts what the provider issued to a client.
func (p *Provider) issued(clientID, kind string) { p.counter.Issued(p.label(clientID), kind) }

// refused counts what the provider refused a client, by reason.
func (p *Provider) refused(clientID, reason string) { p.counter.Refused(p.label(clientID), reason) }

// label is a client's ID as a metric label: only configured IDs, so
// that a client's input never makes new series.
func (p *Provider) label(clientID string) string {
	if p.cfg.client(clientID) == nil {
		return "unknown"
	}
	return clientID
}

// endpoint is an endpoint at an absolute path.
func endpoint(path string) *op.Endpoint { return op.NewEndpoint(path[1:]) }

// Subject is the sub of an account's stable key in a realm:
// base64url(SHA-256("miniapp sub" 0 realm 0 key)) cut to 22 characters.
// key is `cfg:<name>` for an account of the config: it survives a
// password change, is the same on every node and differs between realms.
func Subject(realm, key string) string {
	sum := sha256.Sum256([]byte("miniapp sub\x00" + realm + "\x00" + key))
	return base64.RawURLEncoding.EncodeToString(sum[:])[:22]
}

// idLifetime is how long an ID token is good for: as an access token.
func (p *Provider) idLifetime() time.Duration { return time.Duration(p.cfg.AccessTokenLifetime) }

// crypto seals the library's codes and access tokens with the realm's
// keys, so they open on every node, after restarts and reloads, and key
// rotation works as for cookies; an access token that is no longer
// live does not open.
type crypto struct{ p *Provider }

// tokenName binds what the crypto seals.
const tokenName = "token"

// Encrypt seals a code's or an access token's plain text.
func (c crypto) Encrypt(plain string) (string, error) {
	return c.p.seal.SealData(session.PurposeOIDC, []byte(plain), tokenName), nil
}

// Decrypt opens a live access token; anything else (a code, a token
// that expired or was revoked) does not open.
func (c crypto) Decrypt(sealed string) (string, error) {
	data, _, err := c.p.seal.OpenData(session.PurposeOIDC, sealed, tokenName)
	if err != nil {
		return "", errNotLive
	}
	plain := string(data)
	t, ok := c.p.splitAccess(plain)
	if !ok || !c.p.live(t, c.p.clock.Now()) {
		if ok {
			c.p.refused(t.ClientID, "access_token_ended")
		}
		return "", errNotLive
	}
	return plain, nil
}
