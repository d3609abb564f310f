// Package idp signs people in through other providers: GitHub, Google
// or any OpenID Connect provider, several at once. It owns the
// `sign_in_with` blocks, a sign-in's flow from its start to the
// provider's callback (provider, state, nonce, PKCE verifier and next
// page, sealed with the realm's keys into one cookie value), the code
// exchange, the ID token's checks (through go-oidc) and GitHub's user
// API, and answers with the identity the provider vouches for. It knows
// the key ring; not accounts, sessions, cookies or pages: the sign-in
// decides what an identity may do.
package idp

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/caddy-miniapp/miniapp/internal/web"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// The presets.
const (
	// GitHub signs in with a GitHub OAuth app and reads the user API.
	GitHub = "github"
	// Google signs in through Google's OpenID Connect discovery.
	Google = "google"
)

// GitHub's and Google's endpoints.
const (
	githubAuthURL = "https://github.com/login/oauth/authorize"
	githubToken   = "https://github.com/login/oauth/access_token"
	githubAPI     = "https://api.github.com"
	googleIssuer  = "https://accounts.google.com"
)

// Provider is a provider people sign in with: a `sign_in_with` block.
type Provider struct {
	// The provider's name, in the sign-in's paths
	// (`/login/with/<name>`) and before a guest's ID (`<name>:<id>`):
	// 1 to 32 lower-case letters, digits, '-' or '_'. `github` and
	// `google` are presets; any other name needs `issuer`.
	Name string `json:"name"`

	// The OpenID Connect issuer whose discovery document
	// (`/.well-known/openid-configuration`) gives the endpoints and keys:
	// `https` (`http` only on loopback addresses). Google's by default
	// for `google`; none for `github`.
	Issuer string `json:"issuer,omitempty"`

	// The client ID and secret the provider gave this site; `{env.*}`
	// placeholders are replaced at load time. Required.
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`

	// The button's text is "Sign in with <label>". Default: `GitHub`,
	// `Google`, or the name.
	Label string `json:"label,omitempty"`

	// The scopes asked for. Default: `openid profile email`, or
	// `read:user user:email` for GitHub. `openid` is always asked of an
	// OpenID Connect provider.
	Scopes []string `json:"scopes,omitempty"`

	// The ID token claim that holds the user's groups at the provider
	// (an array of strings, or one string). Guests get them prefixed
	// with the provider's name (`company:staff`). Default: none.
	GroupsClaim string `json:"groups_claim,omitempty"`

	// Endpoints in place of the preset's or discovery's: the
	// authorization and token endpoints, and GitHub's API (GitHub
	// Enterprise: `https://ghe.example.com/api/v3`). `https` (`http`
	// only on loopback addresses).
	AuthURL  string `json:"auth_url,omitempty"`
	TokenURL string `json:"token_url,omitempty"`
	APIURL   string `json:"api_url,omitempty"`

	// Users may be linked by an e-mail address the provider says is
	// verified, as well as by its stable ID. Only for a provider whose
	// addresses cannot change hands, such as the operator's own; never
	// for GitHub.
	LinkByEmail bool `json:"link_by_email,omitempty"`

	// A linked user with a second factor is not asked for it when the
	// provider says it checked one itself (`amr` holds `mfa`, `otp` or
	// `hwk`). Default: the second factor is asked here too.
	TrustProviderMFA bool `json:"trust_provider_mfa,omitempty"`

	// secretGiven: the config has a secret, which its placeholders may
	// have left empty
	secretGiven bool
}

// IsGitHub reports whether the provider is GitHub's OAuth, not OpenID
// Connect.
func (p *Provider) IsGitHub() bool { return p.Name == GitHub }

// isGoogle reports whether the provider is Google: the preset, or any
// block with Google's issuer.
func (p *Provider) isGoogle() bool { return p.Name == Google || p.Issuer == googleIssuer }

// ParseProvider reads a `sign_in_with` block:
//
//	sign_in_with <name> {
//	    issuer <url>
//	    client_id <id>
//	    client_secret <secret>
//	    label <text>
//	    scopes <scope...>
//	    groups_claim <claim>
//	    auth_url <url>
//	    token_url <url>
//	    api_url <url>
//	    link_by_email
//	    trust_provider_mfa
//	}
func ParseProvider(d *caddyfile.Dispenser) (Provider, error) {
	var p Provider
	if !d.Args(&p.Name) || d.NextArg() {
		return p, d.ArgErr()
	}
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		sub := d.Val()
		if seen[sub] {
			return p, d.Errf("sign_in_with %s: duplicate subdirective %s", p.Name, sub)
		}
		seen[sub] = true
		var dst *string
		switch sub {
		case "issuer":
			dst = &p.Issuer
		case "client_id":
			dst = &p.ClientID
		case "client_secret":
			dst, p.secretGiven = &p.ClientSecret, true
		case "label":
			dst = &p.Label
		case "groups_claim":
			dst = &p.GroupsClaim
		case "auth_url":
			dst = &p.AuthURL
		case "token_url":
			dst = &p.TokenURL
		case "api_url":
			dst = &p.APIURL
		case "scopes":
			p.Scopes = d.RemainingArgs()
			if len(p.Scopes) == 0 {
				return p, d.ArgErr()
			}
			continue
		case "link_by_email", "trust_provider_mfa":
			if d.NextArg() {
				return p, d.ArgErr()
			}
			p.LinkByEmail = p.LinkByEmail || sub == "link_by_email"
			p.TrustProviderMFA = p.TrustProviderMFA || sub == "trust_provider_mfa"
			continue
		default:
			return p, d.Errf("sign_in_with %s: unknown subdirective %s", p.Name, sub)
		}
		if !d.Args(dst) || d.NextArg() {
			return p, d.ArgErr()
		}
	}
	return p, nil
}

// SetDefaults replaces the placeholders of the client's ID and secret
// with replace and fills in the preset's or the defaults.
func (p *Provider) SetDefaults(replace func(string) string) {
	p.secretGiven = p.secretGiven || p.ClientSecret != ""
	p.ClientID, p.ClientSecret = replace(p.ClientID), replace(p.ClientSecret)
	label, scopes := p.Name, []string{"openid", "profile", "email"}
	switch p.Name {
	case GitHub:
		label, scopes = "GitHub", []string{"read:user", "user:email"}
		p.AuthURL = or(p.AuthURL, githubAuthURL)
		p.TokenURL = or(p.TokenURL, githubToken)
		p.APIURL = or(p.APIURL, githubAPI)
	case Google:
		label = "Google"
		p.Issuer = or(p.Issuer, googleIssuer)
	}
	p.Label = or(p.Label, label)
	if len(p.Scopes) == 0 {
		p.Scopes = scopes
	}
	if !p.IsGitHub() && !slices.Contains(p.Scopes, "openid") {
		p.Scopes = append([]string{"openid"}, p.Scopes...)
	}
}

// or is s, or def when s is empty.
func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// nameForm is what a provider's name may be.
var nameForm = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,31}$`)

// Validate checks a provider with its defaults set.
func (p *Provider) Validate() error {
	if !nameForm.MatchString(p.Name) {
		return fmt.Errorf("sign_in_with %q: a name is 1 to 32 lower-case letters, digits, '-' or '_'", p.Name)
	}
	fail := func(format string, args ...any) error {
		return fmt.Errorf("sign_in_with %s: "+format, append([]any{p.Name}, args...)...)
	}
	switch {
	case p.ClientID == "":
		return fail("client_id is required (is its environment variable set?)")
	case p.ClientSecret == "" && p.secretGiven:
		return fail("client_secret is empty (is its environment variable set?)")
	case p.ClientSecret == "":
		return fail("client_secret is required")
	case p.IsGitHub() && p.Issuer != "":
		return fail("GitHub signs in with OAuth, not OpenID Connect: no issuer (auth_url, token_url and api_url for GitHub Enterprise)")
	case p.IsGitHub() && p.LinkByEmail:
		return fail("GitHub links users by numeric ID only: an e-mail address can change hands")
	case p.IsGitHub() && p.GroupsClaim != "":
		return fail("GitHub has no groups claim")
	case !p.IsGitHub() && p.Issuer == "":
		return fail("issuer is required (the presets are github and google)")
	case !p.IsGitHub() && p.APIURL != "":
		return fail("api_url is GitHub's alone")
	case len(p.Label) > 64 || strings.ContainsFunc(p.Label, func(r rune) bool { return r < ' ' || r == 0x7f }):
		return fail("label must be at most 64 characters without control characters")
	}
	for _, u := range []struct{ name, value string }{{"issuer", p.Issuer}, {"auth_url", p.AuthURL}, {"token_url", p.TokenURL}, {"api_url", p.APIURL}} {
		if err := checkURL(u.value); u.value != "" && err != nil {
			return fail("%s %v", u.name, err)
		}
	}
	return nil
}

// issuer is what a flow is bound to: the issuer, or GitHub's
// authorization endpoint.
func (p *Provider) issuer() string { return or(p.Issuer, p.AuthURL) }

// secure reports whether an endpoint is https, or http on a loopback
// address.
func secure(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && u.Host != "" && u.User == nil && (u.Scheme == "https" || u.Scheme == "http" && web.Loopback(u.Hostname()))
}

// checkURL checks an endpoint: https, or http on a loopback address;
// no query or fragment.
func checkURL(raw string) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil || u.Host == "" || u.User != nil:
		return errors.New("must be an absolute URL")
	case !secure(raw):
		return errors.New("must be https (http only on loopback addresses)")
	case u.RawQuery != "" || u.Fragment != "":
		return errors.New("must have no query or fragment")
	}
	return nil
}

// ValidateAll checks the providers and that no name comes twice.
func ValidateAll(providers []Provider) error {
	for i := range providers {
		if err := providers[i].Validate(); err != nil {
			return err
		}
		if slices.ContainsFunc(providers[:i], func(o Provider) bool { return o.Name == providers[i].Name }) {
			return fmt.Errorf("sign_in_with %s is defined twice", providers[i].Name)
		}
	}
	return nil
}
