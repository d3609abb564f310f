package idp

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// TestProviderConfig: the Caddyfile block, the presets, and what
// Validate refuses.
func TestProviderConfig(t *testing.T) {
	d := caddyfile.NewTestDispenser(`sign_in_with company {
		issuer https://idp.example.com
		client_id c
		client_secret s
		label "Company account"
		scopes profile email groups
		groups_claim groups
		link_by_email
		trust_provider_mfa
	}`)
	d.Next()
	p, err := ParseProvider(d)
	if err != nil {
		t.Fatal(err)
	}
	p.SetDefaults(func(s string) string { return s })
	if err := p.Validate(); err != nil || p.Label != "Company account" || !p.LinkByEmail || !p.TrustProviderMFA ||
		!slices.Equal(p.Scopes, []string{"openid", "profile", "email", "groups"}) {
		t.Errorf("parsed %+v %v", p, err)
	}
	gh := Provider{Name: GitHub, ClientID: "c", ClientSecret: "s"}
	gh.SetDefaults(func(s string) string { return s })
	if gh.Validate() != nil || gh.AuthURL != githubAuthURL || gh.APIURL != githubAPI || gh.Label != "GitHub" {
		t.Errorf("github preset %+v", gh)
	}
	for name, p := range map[string]Provider{
		"no issuer":               {Name: "company", ClientID: "c", ClientSecret: "s"},
		"http issuer":             {Name: "company", Issuer: "http://idp.example.com", ClientID: "c", ClientSecret: "s"},
		"no secret":               {Name: "company", Issuer: "https://idp.example.com", ClientID: "c"},
		"empty secret":            {Name: "company", Issuer: "https://idp.example.com", ClientID: "c", ClientSecret: "{env.NONE}"},
		"bad name":                {Name: "Company", Issuer: "https://idp.example.com", ClientID: "c", ClientSecret: "s"},
		"github by email":         {Name: GitHub, ClientID: "c", ClientSecret: "s", LinkByEmail: true},
		"github with issuer":      {Name: GitHub, ClientID: "c", ClientSecret: "s", Issuer: "https://github.com"},
		"api_url of another":      {Name: "company", Issuer: "https://idp.example.com", ClientID: "c", ClientSecret: "s", APIURL: "https://x.example"},
		"a token_url with query":  {Name: "company", Issuer: "https://idp.example.com", ClientID: "c", ClientSecret: "s", TokenURL: "https://x.example/t?a=1"},
		"a label with a new line": {Name: "company", Issuer: "https://idp.example.com", ClientID: "c", ClientSecret: "s", Label: "a\nb"},
	} {
		p.SetDefaults(func(s string) string { return strings.ReplaceAll(s, "{env.NONE}", "") })
		if err := p.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	twice := []Provider{{Name: GitHub, ClientID: "c", ClientSecret: "s"}, {Name: GitHub, ClientID: "c", ClientSecret: "s"}}
	for i := range twice {
		twice[i].SetDefaults(func(s string) string { return s })
	}
	if err := ValidateAll(twice); err == nil {
		t.Error("a provider defined twice accepted")
	}
}

// TestDiscoveryEndpoints: a discovery document that names an endpoint
// off https (and off loopback) is refused.
func TestDiscoveryEndpoints(t *testing.T) {
	f := newFakeIdP(t)
	f.tokenURL = "http://idp.example.test/token"
	s, p, _ := newService(t, f)
	_, err := s.Begin(context.Background(), p, callback, "")
	if e, ok := errors.AsType[*Error](err); !ok || e.Status != http.StatusBadGateway || !strings.Contains(e.Cause.Error(), "not https") {
		t.Errorf("discovery with an http token endpoint: %v", err)
	}
}
