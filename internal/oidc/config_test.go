package oidc

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// TestCaddyfile reads the example block.
func TestCaddyfile(t *testing.T) {
	d := caddyfile.NewTestDispenser(`oidc {
		issuer https://auth.example.com
		client grafana {
			secret {env.GRAFANA_OIDC_SECRET}
			redirect_uri https://grafana.example.com/login/generic_oauth
			redirect_uri https://grafana.example.com/other
			post_logout_redirect_uri https://grafana.example.com/login
			backchannel_logout_uri https://grafana.example.com/logout/backchannel
			groups admins staff
			second_factor required
			name "Grafana"
		}
		client cli {
			redirect_uri http://127.0.0.1/callback
		}
		access_token_lifetime 5m
		refresh_token_lifetime 7d
	}`)
	d.Next()
	var c Config
	if err := c.UnmarshalCaddyfile(d); err != nil {
		t.Fatal(err)
	}
	g := c.Clients[0]
	if c.Issuer != "https://auth.example.com" || len(c.Clients) != 2 || g.ID != "grafana" || g.Secret != "{env.GRAFANA_OIDC_SECRET}" ||
		len(g.RedirectURIs) != 2 || g.PostLogoutRedirectURIs[0] != "https://grafana.example.com/login" || g.Name != "Grafana" ||
		!slices.Equal(g.Groups, []string{"admins", "staff"}) || g.SecondFactor != "required" || !c.Clients[1].Public() ||
		c.AccessTokenLifetime != caddy.Duration(5*60e9) || c.RefreshTokenLifetime != caddy.Duration(7*24*3600e9) {
		t.Errorf("parsed %+v", c)
	}
	for name, block := range map[string]string{
		"unknown":        "oidc {\n nope 1\n}",
		"bad duration":   "oidc {\n access_token_lifetime soon\n}",
		"client twice":   "oidc {\n client a {\n secret x\n secret y\n }\n}",
		"an argument":    "oidc extra {\n}",
		"unknown in cl":  "oidc {\n client a {\n scope x\n }\n}",
		"issuer twice":   "oidc {\n issuer https://a\n issuer https://b\n}",
		"zero lifetime":  "oidc {\n refresh_token_lifetime 0s\n}",
		"client no name": "oidc {\n client {\n }\n}",
	} {
		d := caddyfile.NewTestDispenser(block)
		d.Next()
		if err := new(Config).UnmarshalCaddyfile(d); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestValidate refuses bad config at load, naming the client.
func TestValidate(t *testing.T) {
	good := func() *Config {
		c := &Config{Clients: []Client{{ID: "app", Secret: secret, RedirectURIs: []string{"https://app.example.test/cb"}}}}
		c.SetDefaults("https://auth.example.test/login", func(s string) string { return s })
		return c
	}
	if err := good().Validate(); err != nil {
		t.Fatal(err)
	}
	for want, edit := range map[string]func(*Config){
		"login_url":                   func(c *Config) { c.Issuer = "" },
		"https origin":                func(c *Config) { c.Issuer = "http://auth.example.test" },
		"without a path":              func(c *Config) { c.Issuer = "https://auth.example.test/realm" },
		"client app is defined twice": func(c *Config) { c.Clients = append(c.Clients, c.Clients[0]) },
		"client app: at least one":    func(c *Config) { c.Clients[0].RedirectURIs = nil },
		"client app: the secret":      func(c *Config) { c.Clients[0].Secret = "short" },
		"fragment":                    func(c *Config) { c.Clients[0].RedirectURIs[0] += "#x" },
		"must be https":               func(c *Config) { c.Clients[0].RedirectURIs[0] = "http://app.example.test/cb" },
		"second_factor":               func(c *Config) { c.Clients[0].SecondFactor = "maybe" },
		"the ID must":                 func(c *Config) { c.Clients[0].ID = "a b" },
		"at most 512":                 func(c *Config) { c.Clients[0].RedirectURIs[0] += strings.Repeat("x", 512) },
		"backchannel_logout_uri":      func(c *Config) { c.Clients[0].BackchannelLogoutURI = "http://app.example.test/bc" },
		"reverse domain order": func(c *Config) {
			c.Clients = append(c.Clients, Client{ID: "native", RedirectURIs: []string{"javascript:alert(1)"}})
		},
	} {
		c := good()
		edit(c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v", want, err)
		}
	}
	c := &Config{Clients: []Client{{ID: "app", Secret: "{env.MINIAPP_TEST_UNSET}", RedirectURIs: []string{"https://app.example.test/cb"}}}}
	c.SetDefaults("https://auth.example.test/login", func(string) string { return "" })
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "client app: the secret is empty") {
		t.Errorf("a secret of an unset variable: %v", err)
	}
	c = good()
	c.Clients = append(c.Clients, Client{ID: "native", RedirectURIs: []string{"http://127.0.0.1/cb", "http://[::1]:8080/cb", "com.example.app:/cb"}})
	if err := c.Validate(); err != nil {
		t.Errorf("a public client's loopback and native redirects: %v", err)
	}
	if got := strings.Join(c.FormActions(), " "); got != "https://app.example.test http://127.0.0.1:* http://[::1]:* com.example.app:" {
		t.Errorf("FormActions: %q", got)
	}
}

// TestDiscovery advertises the code flow alone, S256 alone, and no
// endpoint outside the prefix.
func TestDiscovery(t *testing.T) {
	f := newFixture(t)
	w, _ := f.serve(http.MethodGet, DiscoveryPath, nil, nil)
	var d map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &d); err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]string{
		"issuer": `"` + issuer + `"`, "response_types_supported": `["code"]`, "code_challenge_methods_supported": `["S256"]`,
		"grant_types_supported": `["authorization_code","refresh_token"]`, "response_modes_supported": `["query","form_post"]`,
		"id_token_signing_alg_values_supported": `["RS256"]`, "backchannel_logout_supported": "true",
		"backchannel_logout_session_supported": "true",
	} {
		if got, _ := json.Marshal(d[key]); string(got) != want {
			t.Errorf("%s: %s, want %s", key, got, want)
		}
	}
	for key, v := range d {
		if s, ok := v.(string); ok && strings.HasPrefix(s, "http") && key != "issuer" && !strings.HasPrefix(s, issuer+Prefix) {
			t.Errorf("%s is outside %s: %s", key, Prefix, s)
		}
	}
	for _, key := range []string{"device_authorization_endpoint", "check_session_iframe", "request_parameter_supported"} {
		if v, ok := d[key]; ok && v != false {
			t.Errorf("discovery has %s: %v", key, v)
		}
	}
	if w, _ := f.serve(http.MethodGet, UserinfoPath, nil, nil); w.Code != http.StatusUnauthorized ||
		w.Header().Get("WWW-Authenticate") != `Bearer realm="`+issuer+`"` {
		t.Errorf("userinfo without a token: %d %q", w.Code, w.Header().Get("WWW-Authenticate"))
	}
	if w, _ := f.serve(http.MethodGet, devicePath, nil, nil); w.Code != http.StatusNotFound {
		t.Errorf("the device endpoint: %d", w.Code)
	}
}
