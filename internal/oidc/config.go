// Package oidc makes a realm an OpenID Connect provider, with the
// zitadel/oidc library doing the protocol (discovery, authorize, token,
// userinfo, keys, revocation, introspection). It owns the provider's
// config and its clients, the library's storage over the realm's store
// (auth requests, single-use codes, tokens, signing keys, grants) and
// the claims of an account. It knows accounts and the store; it does not
// know cookies, pages or the sign-in: the route hands it a signed-in
// session's facts as a value and it finishes the authorization.
package oidc

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/web"
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// Defaults of the config's lifetimes.
const (
	DefaultAccessTokenLifetime  = 10 * time.Minute
	DefaultRefreshTokenLifetime = 30 * 24 * time.Hour
)

// MaxURILen bounds a client's URIs, which an authorization request
// carries through the login page.
const MaxURILen = 512

// MinSecretLen is the shortest client secret accepted.
const MinSecretLen = 32

// Config makes the realm an OpenID Connect provider for its clients.
type Config struct {
	// The issuer: an `https` origin such as `https://auth.example.com`,
	// without a path (`http` only on localhost and loopback addresses,
	// for trying it out).
	// Discovery is at `/.well-known/openid-configuration` under it and
	// every other endpoint under `/miniapp/oidc/`. Default: the origin
	// of `login_url`, one of which is required.
	Issuer string `json:"issuer,omitempty"`

	// The relying parties that may sign in through the realm; they are
	// trusted by the operator, so there is no consent screen.
	Clients []Client `json:"clients,omitempty"`

	// How long an access token (and an ID token) is good for.
	// Default: 10m.
	AccessTokenLifetime caddy.Duration `json:"access_token_lifetime,omitempty"`

	// How long a refresh token (scope `offline_access`) is good for;
	// each use rotates it. Default: 30d.
	RefreshTokenLifetime caddy.Duration `json:"refresh_token_lifetime,omitempty"`
}

// Client is a relying party.
type Client struct {
	// The client ID: 1 to 64 letters, digits, '.', '_' or '-'.
	ID string `json:"id"`

	// The secret of a confidential client (`client_secret_basic` or
	// `client_secret_post`), at least 32 characters; `{env.*}`
	// placeholders are replaced at load time. Without one, the client is
	// public and must use PKCE (S256).
	Secret string `json:"secret,omitempty"`

	// Where the client may receive codes, matched exactly (a loopback
	// `http` URI of a public client matches on any port, RFC 8252 §7.3).
	// At least one.
	RedirectURIs []string `json:"redirect_uris,omitempty"`

	// Where `end_session` may send the browser afterwards, matched
	// exactly.
	PostLogoutRedirectURIs []string `json:"post_logout_redirect_uris,omitempty"`

	// Where the client receives back-channel logout tokens, when it
	// does.
	BackchannelLogoutURI string `json:"backchannel_logout_uri,omitempty"`

	// Only members of one of these groups may sign in to the client.
	// Default: everyone.
	Groups []string `json:"groups,omitempty"`

	// `required`: only sessions begun with two factors sign in to the
	// client. Default: whatever the session has.
	SecondFactor string `json:"second_factor,omitempty"`

	// The client's name as the profile shows it. Default: its ID.
	Name string `json:"name,omitempty"`

	// secretGiven: the config has a secret, which its placeholders may
	// have left empty
	secretGiven bool
}

// Public reports whether the client has no secret.
func (c *Client) Public() bool { return c.Secret == "" }

// member reports whether a user of the groups may sign in to the
// client.
func (c *Client) member(groups []string) bool {
	return len(c.Groups) == 0 || slices.ContainsFunc(c.Groups, func(g string) bool { return slices.Contains(groups, g) })
}

// admits reports whether the client takes a user of the groups whose
// session began with that many factors.
func (c *Client) admits(groups []string, factors uint8) bool {
	return c.member(groups) && (c.SecondFactor != "required" || factors >= 2)
}

// UnmarshalCaddyfile reads the block of the `oidc` subdirective:
//
//	oidc {
//	    issuer <url>
//	    client <id> {
//	        secret <secret>
//	        redirect_uri <uri>
//	        post_logout_redirect_uri <uri>
//	        backchannel_logout_uri <uri>
//	        groups <group...>
//	        second_factor required
//	        name <name>
//	    }
//	    access_token_lifetime <duration>
//	    refresh_token_lifetime <duration>
//	}
func (c *Config) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	if d.NextArg() {
		return d.ArgErr()
	}
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		sub := d.Val()
		if sub != "client" && seen[sub] {
			return d.Errf("duplicate subdirective oidc %s", sub)
		}
		seen[sub] = true
		var err error
		switch sub {
		case "issuer":
			err = oneArg(d, &c.Issuer)
		case "client":
			var cl Client
			if cl, err = clientBlock(d); err == nil {
				c.Clients = append(c.Clients, cl)
			}
		case "access_token_lifetime":
			err = durationArg(d, &c.AccessTokenLifetime)
		case "refresh_token_lifetime":
			err = durationArg(d, &c.RefreshTokenLifetime)
		default:
			return d.Errf("unknown subdirective of oidc %q", sub)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// clientBlock reads `client <id> { ... }`.
func clientBlock(d *caddyfile.Dispenser) (Client, error) {
	var c Client
	if !d.Args(&c.ID) || d.NextArg() {
		return c, d.ArgErr()
	}
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		sub := d.Val()
		repeated := sub == "redirect_uri" || sub == "post_logout_redirect_uri"
		if !repeated && seen[sub] {
			return c, d.Errf("client %s: duplicate subdirective %s", c.ID, sub)
		}
		seen[sub] = true
		var err error
		switch sub {
		case "secret":
			err = oneArg(d, &c.Secret)
		case "redirect_uri":
			var uri string
			err = oneArg(d, &uri)
			c.RedirectURIs = append(c.RedirectURIs, uri)
		case "post_logout_redirect_uri":
			var uri string
			err = oneArg(d, &uri)
			c.PostLogoutRedirectURIs = append(c.PostLogoutRedirectURIs, uri)
		case "backchannel_logout_uri":
			err = oneArg(d, &c.BackchannelLogoutURI)
		case "groups":
			if c.Groups = d.RemainingArgs(); len(c.Groups) == 0 {
				err = d.ArgErr()
			}
		case "second_factor":
			err = oneArg(d, &c.SecondFactor)
		case "name":
			err = oneArg(d, &c.Name)
		default:
			return c, d.Errf("client %s: unknown subdirective %q", c.ID, sub)
		}
		if err != nil {
			return c, err
		}
	}
	return c, nil
}

// oneArg reads the one argument of the current subdirective.
func oneArg(d *caddyfile.Dispenser, dst *string) error {
	if !d.Args(dst) || d.NextArg() {
		return d.ArgErr()
	}
	return nil
}

// durationArg reads the one positive duration of the current
// subdirective.
func durationArg(d *caddyfile.Dispenser, dst *caddy.Duration) error {
	sub := d.Val()
	var val string
	if err := oneArg(d, &val); err != nil {
		return err
	}
	dur, err := caddy.ParseDuration(val)
	if err != nil || dur <= 0 {
		return d.Errf("oidc %s must be a positive duration, got %q", sub, val)
	}
	*dst = caddy.Duration(dur)
	return nil
}

// SetDefaults replaces placeholders in the issuer and the secrets, and
// fills in the issuer from the login URL's origin (when that is
// absolute) and the lifetimes.
func (c *Config) SetDefaults(loginURL string, replace func(string) string) {
	c.Issuer = replace(c.Issuer)
	for i := range c.Clients {
		cl := &c.Clients[i]
		cl.secretGiven = cl.Secret != ""
		cl.Secret = replace(cl.Secret)
	}
	if c.Issuer == "" {
		if u, err := url.Parse(loginURL); err == nil && u.Scheme != "" && u.Host != "" {
			c.Issuer = u.Scheme + "://" + u.Host
		}
	}
	c.Issuer = strings.TrimSuffix(c.Issuer, "/")
	if c.AccessTokenLifetime == 0 {
		c.AccessTokenLifetime = caddy.Duration(DefaultAccessTokenLifetime)
	}
	if c.RefreshTokenLifetime == 0 {
		c.RefreshTokenLifetime = caddy.Duration(DefaultRefreshTokenLifetime)
	}
}

// Validate refuses a config the provider cannot serve safely, naming the
// client at fault.
func (c *Config) Validate() error {
	if c.Issuer == "" {
		return fmt.Errorf("oidc needs login_url (an absolute URL) or issuer: a handler does not know its own host")
	}
	iss, err := url.Parse(c.Issuer)
	if err != nil || iss.Host == "" || iss.Path != "" || iss.RawQuery != "" || iss.Fragment != "" || iss.User != nil ||
		iss.Scheme != "https" && (iss.Scheme != "http" || !web.Loopback(iss.Hostname())) {
		return fmt.Errorf("oidc issuer %q must be an https origin, without a path, query or fragment (http only on localhost and loopback addresses)", c.Issuer)
	}
	if len(c.Clients) == 0 {
		return fmt.Errorf("oidc needs at least one client")
	}
	ids := map[string]bool{}
	for i := range c.Clients {
		cl := &c.Clients[i]
		if !validID(cl.ID) {
			return fmt.Errorf("oidc client %q: the ID must be 1 to 64 letters, digits, '.', '_' or '-'", cl.ID)
		}
		if ids[cl.ID] {
			return fmt.Errorf("oidc client %s is defined twice", cl.ID)
		}
		ids[cl.ID] = true
		if err := cl.validate(); err != nil {
			return fmt.Errorf("oidc client %s: %v", cl.ID, err)
		}
	}
	if time.Duration(c.AccessTokenLifetime) <= 0 || time.Duration(c.RefreshTokenLifetime) <= 0 {
		return fmt.Errorf("oidc token lifetimes must be positive")
	}
	return nil
}

// validate checks one client.
func (c *Client) validate() error {
	if c.secretGiven && c.Public() {
		return fmt.Errorf("the secret is empty once its placeholders are replaced (an unset environment variable?): a confidential client does not become public")
	}
	if !c.Public() && len(c.Secret) < MinSecretLen {
		return fmt.Errorf("the secret must be at least %d characters", MinSecretLen)
	}
	if len(c.RedirectURIs) == 0 {
		return fmt.Errorf("at least one redirect_uri is required")
	}
	for _, uri := range c.RedirectURIs {
		if err := c.checkURI(uri, true); err != nil {
			return fmt.Errorf("redirect_uri %q %v", uri, err)
		}
	}
	for _, uri := range c.PostLogoutRedirectURIs {
		if err := c.checkURI(uri, true); err != nil {
			return fmt.Errorf("post_logout_redirect_uri %q %v", uri, err)
		}
	}
	if c.BackchannelLogoutURI != "" {
		if err := c.checkURI(c.BackchannelLogoutURI, false); err != nil {
			return fmt.Errorf("backchannel_logout_uri %q %v", c.BackchannelLogoutURI, err)
		}
	}
	if c.SecondFactor != "" && c.SecondFactor != "required" {
		return fmt.Errorf("second_factor must be required, got %q", c.SecondFactor)
	}
	for _, g := range c.Groups {
		if g == "" || strings.ContainsAny(g, ", \t") {
			return fmt.Errorf("group %q must be a name without commas or spaces", g)
		}
	}
	if len(c.Name) > 64 || strings.ContainsFunc(c.Name, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		return fmt.Errorf("the name must be at most 64 characters of text")
	}
	return nil
}

// checkURI refuses a URI that is not absolute, has a fragment or user
// info, or is plain http off loopback where that is not allowed: a
// public client may redirect to a loopback http URI (a native app), a
// confidential one only to https or loopback.
func (c *Client) checkURI(uri string, redirect bool) error {
	u, err := url.Parse(uri)
	switch {
	case err != nil || u.Scheme == "" || (u.Scheme == "http" || u.Scheme == "https") && u.Host == "" ||
		u.Host == "" && u.Opaque == "" && u.Path == "":
		return fmt.Errorf("must be an absolute URI")
	case len(uri) > MaxURILen:
		return fmt.Errorf("must be at most %d bytes", MaxURILen)
	case u.Fragment != "" || strings.Contains(uri, "#"):
		return fmt.Errorf("must not have a fragment")
	case u.User != nil:
		return fmt.Errorf("must not carry user info")
	case u.Scheme == "http" && !web.Loopback(u.Hostname()):
		return fmt.Errorf("must be https (http only on loopback addresses)")
	case u.Scheme != "https" && u.Scheme != "http" && (!redirect || !c.Public()):
		return fmt.Errorf("must be https")
	case u.Scheme != "https" && u.Scheme != "http" && !strings.Contains(u.Scheme, "."):
		return fmt.Errorf("must be https, http on loopback, or a native app's own scheme in reverse domain order (com.example.app:, RFC 8252 §7.1)")
	}
	return nil
}

// clientID is what a client ID may be.
var clientID = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// validID reports whether id is a valid client ID.
func validID(id string) bool { return clientID.MatchString(id) }

// client is the configured client of that ID, nil for none.
func (c *Config) client(id string) *Client {
	i := slices.IndexFunc(c.Clients, func(cl Client) bool { return cl.ID == id })
	if i < 0 {
		return nil
	}
	return &c.Clients[i]
}

// FormActions are the CSP sources of the clients' redirect URIs: the
// login form's redirect goes on through the callback to them, and a
// browser holds that redirect to the page's form-action (a public
// client's loopback URI on any port, a native app's scheme whole).
func (c *Config) FormActions() []string {
	var sources []string
	for _, cl := range c.Clients {
		for _, uri := range cl.RedirectURIs {
			u, err := url.Parse(uri)
			source := ""
			switch {
			case err != nil:
				continue
			case u.Scheme != "http" && u.Scheme != "https":
				source = u.Scheme + ":"
			case cl.Public() && web.Loopback(u.Hostname()):
				source = u.Scheme + "://" + strings.TrimSuffix(u.Host, ":"+u.Port()) + ":*"
			default:
				source = u.Scheme + "://" + u.Host
			}
			if !slices.Contains(sources, source) {
				sources = append(sources, source)
			}
		}
	}
	return sources
}
