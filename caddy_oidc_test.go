package miniapp

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/oidc"
	"github.com/caddy-miniapp/miniapp/internal/session"
	gooidc "github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"
)

// oidcSecret is the test's confidential client secret.
const oidcSecret = "grafana-secret-of-at-least-32-characters"

// oidcSite is a Caddy whose realm is an OpenID Connect provider, with a
// relying party written with go-oidc and x/oauth2 for each client.
type oidcSite struct {
	*site
	issuer   string
	provider *gooidc.Provider
	ctx      context.Context
	// logouts are the logout tokens grafana's back-channel receives
	logouts chan string
}

// startOIDC starts Caddy with the provider: grafana (confidential, staff
// only), cli (public) and vault (second factor required); carol is in
// staff.
func startOIDC(t *testing.T) *oidcSite {
	t.Helper()
	issuer := httpBase
	logouts := make(chan string, 8)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		logouts <- r.PostFormValue("logout_token")
	}))
	t.Cleanup(receiver.Close)
	s := startCaddy(t, t.TempDir(), fmt.Sprintf(`user carol %s {
			groups staff
			email carol@example.test
		}
		oidc {
			issuer %s
			client grafana {
				secret %s
				redirect_uri http://127.0.0.1:9/rp/grafana
				post_logout_redirect_uri http://127.0.0.1:9/rp/bye
				backchannel_logout_uri %s/bc
				groups staff
				name Grafana
			}
			client cli {
				redirect_uri http://127.0.0.1/rp/cli
			}
			client vault {
				secret %s
				redirect_uri http://127.0.0.1:9/rp/vault
				second_factor required
			}
		}`, adaHash, issuer, oidcSecret, receiver.URL, oidcSecret))
	ctx := gooidc.ClientContext(context.Background(), &http.Client{Transport: forwardedFor{nextIP(), loopback()}})
	provider, err := gooidc.NewProvider(ctx, issuer)
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	return &oidcSite{site: s, issuer: issuer, provider: provider, ctx: ctx, logouts: logouts}
}

// relyingParty is a client's OAuth 2.0 config.
func (o *oidcSite) relyingParty(clientID, secret, redirect string) *oauth2.Config {
	return &oauth2.Config{ClientID: clientID, ClientSecret: secret, Endpoint: o.provider.Endpoint(), RedirectURL: redirect,
		Scopes: []string{gooidc.ScopeOpenID, "profile", "email", "groups"}}
}

// authorize follows a browser from the client's authorization URL
// through the login page (signing in as user when it is shown) to the
// client's redirect URI, and returns that URL.
func (o *oidcSite) authorize(t *testing.T, c *http.Client, authURL, user, password string) *url.URL {
	t.Helper()
	target := authURL
	for range 8 {
		resp, _ := call(t, c, "GET", target, "", "Accept", "text/html")
		if resp.StatusCode != http.StatusFound && resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("GET %s: %d", target, resp.StatusCode)
		}
		loc, err := resp.Location()
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case strings.HasPrefix(loc.String(), "http://127.0.0.1"):
			return loc
		case loc.Path == "/login":
			form := url.Values{"username": {user}, "password": {password}, "next": {loc.Query().Get("next")}}
			resp, _ := call(t, c, "POST", o.issuer+"/login", form.Encode(), "Accept", "text/html", "Origin", o.issuer)
			if resp.StatusCode != http.StatusSeeOther {
				t.Fatalf("login as %s: %d", user, resp.StatusCode)
			}
			next, _ := resp.Location()
			target = next.String()
		default:
			target = loc.String()
		}
	}
	t.Fatalf("no way back to the client from %s", authURL)
	return nil
}

// TestCaddyOpenIDConnect: a confidential and a public client sign in
// through a real Caddy; a reused code, a wrong verifier, a refused group
// and sign out everywhere behave as the spec and the issue say.
func TestCaddyOpenIDConnect(t *testing.T) {
	o := startOIDC(t)
	browser := o.client()
	grafana := o.relyingParty("grafana", oidcSecret, "http://127.0.0.1:9/rp/grafana")
	verifier := oauth2.GenerateVerifier()
	nonce := fmt.Sprintf("%x", session.Random(8))
	back := o.authorize(t, browser, grafana.AuthCodeURL("st-1", gooidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier)), "carol", adaPassword)
	code := back.Query().Get("code")
	if back.Query().Get("state") != "st-1" || code == "" {
		t.Fatalf("back at grafana: %s", back)
	}
	if _, err := grafana.Exchange(o.ctx, code, oauth2.VerifierOption("not-"+verifier)); err == nil {
		t.Error("a wrong verifier got tokens")
	}
	back = o.authorize(t, browser, grafana.AuthCodeURL("st-2", gooidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier)), "", "")
	code = back.Query().Get("code")
	tok, err := grafana.Exchange(o.ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	idToken, err := o.provider.VerifierContext(o.ctx, &gooidc.Config{ClientID: "grafana"}).Verify(o.ctx, raw)
	if err != nil || idToken.Nonce != nonce {
		t.Fatalf("ID token: %v (nonce %q)", err, idToken.Nonce)
	}
	var claims struct {
		Email    string   `json:"email"`
		Verified bool     `json:"email_verified"`
		Name     string   `json:"preferred_username"`
		Groups   []string `json:"groups"`
	}
	if err := idToken.Claims(&claims); err != nil || claims.Email != "carol@example.test" || !claims.Verified || claims.Name != "carol" ||
		len(claims.Groups) != 1 || claims.Groups[0] != "staff" {
		t.Errorf("ID token claims: %+v %v", claims, err)
	}
	info, err := o.provider.UserInfo(o.ctx, oauth2.StaticTokenSource(tok))
	if err != nil || info.Subject != idToken.Subject || info.Email != "carol@example.test" {
		t.Fatalf("userinfo: %+v %v", info, err)
	}
	if _, err := grafana.Exchange(o.ctx, code, oauth2.VerifierOption(verifier)); err == nil {
		t.Error("a code worked twice")
	}
	if _, err := o.provider.UserInfo(o.ctx, oauth2.StaticTokenSource(tok)); err == nil {
		t.Error("the first use's access token still works after the code's reuse")
	}

	// ada is not in grafana's groups
	other := o.client()
	back = o.authorize(t, other, grafana.AuthCodeURL("st-3", oauth2.S256ChallengeOption(verifier)), "ada", adaPassword)
	if back.Query().Get("error") != "access_denied" || back.Query().Get("code") != "" {
		t.Errorf("ada at grafana: %s", back)
	}
	// nor has she a second factor for vault
	vault := o.relyingParty("vault", oidcSecret, "http://127.0.0.1:9/rp/vault")
	back = o.authorize(t, other, vault.AuthCodeURL("st-4", oauth2.S256ChallengeOption(verifier)), "ada", adaPassword)
	if back.Query().Get("error") != "access_denied" {
		t.Errorf("ada at vault without a second factor: %s", back)
	}

	// a public client: PKCE, no secret, a loopback redirect on any port
	cli := o.relyingParty("cli", "", "http://127.0.0.1:50123/rp/cli")
	cli.Scopes = append(cli.Scopes, gooidc.ScopeOfflineAccess)
	back = o.authorize(t, browser, cli.AuthCodeURL("st-5", oauth2.S256ChallengeOption(verifier)), "", "")
	cliTok, err := cli.Exchange(o.ctx, back.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil || cliTok.RefreshToken == "" {
		t.Fatalf("public client: %v", err)
	}
	if resp, _ := call(t, o.client(), "GET", cli.AuthCodeURL("st-6"), "", "Accept", "text/html"); resp.StatusCode != http.StatusFound ||
		!strings.Contains(resp.Header.Get("Location"), "error=invalid_request") {
		t.Errorf("a public client without PKCE: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}

	// the library's endpoints read bodies within max_body_size, and no
	// multipart form
	if resp, _ := call(t, o.client(), "POST", o.issuer+"/miniapp/oidc/token", "grant_type="+strings.Repeat("x", 70000)); resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("a token request over max_body_size: %d", resp.StatusCode)
	}
	if resp, _ := call(t, o.client(), "POST", o.issuer+"/miniapp/oidc/token", "--b--", "Content-Type", "multipart/form-data; boundary=b"); resp.StatusCode != http.StatusUnsupportedMediaType {
		t.Errorf("a multipart token request: %d", resp.StatusCode)
	}

	// an unregistered redirect URI: an error page, no redirect
	evil := o.relyingParty("grafana", oidcSecret, "https://evil.example.test/cb")
	resp, body := call(t, browser, "GET", evil.AuthCodeURL("st-7", oauth2.S256ChallengeOption(verifier)), "", "Accept", "text/html")
	if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" || !strings.Contains(body, "redirect_uri") {
		t.Errorf("an unregistered redirect URI: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}

	// the profile lists the app holding a refresh token; signing out of
	// it there ends its tokens
	var prof struct {
		Apps []oidc.AppView `json:"apps"`
	}
	if _, body := call(t, browser, "GET", o.issuer+"/profile", "", "Accept", "application/json"); json.Unmarshal([]byte(body), &prof) != nil ||
		len(prof.Apps) != 1 || prof.Apps[0].Client != "cli" {
		t.Fatalf("the profile's apps: %s", body)
	}
	if _, body := call(t, browser, "GET", o.issuer+"/profile", "", "Accept", "text/html"); !strings.Contains(body, `aria-label="Sign out of this app, cli"`) {
		t.Errorf("the profile page lists no app")
	}
	if resp, _ := call(t, o.client(), "POST", o.issuer+oidc.GrantsPath, "grant="+prof.Apps[0].Grant, "Origin", o.issuer); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("another browser signed carol out of an app: %d", resp.StatusCode)
	}
	if resp, _ := call(t, browser, "POST", o.issuer+oidc.GrantsPath, "grant="+prof.Apps[0].Grant, "Origin", o.issuer); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign out of this app: %d", resp.StatusCode)
	}
	stale := *cliTok
	stale.Expiry = time.Now().Add(-time.Minute)
	if _, err := cli.TokenSource(o.ctx, &stale).Token(); err == nil || !strings.Contains(err.Error(), "invalid_grant") {
		t.Errorf("refresh after signing out of the app: %v", err)
	}
	offline := func(state string) *oauth2.Token {
		back := o.authorize(t, browser, cli.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier)), "", "")
		tok, err := cli.Exchange(o.ctx, back.Query().Get("code"), oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatal(err)
		}
		tok.Expiry = time.Now().Add(-time.Minute)
		return tok
	}

	// the operator lists and revokes a user's grants (admin API and
	// caddy miniapp), and rotates the signing key
	cliTok = offline("st-8")
	var grants []oidc.GrantInfo
	if _, body := call(t, o.client(), "GET", adminBase+"/miniapp/oidc/grants?user=carol", ""); json.Unmarshal([]byte(body), &grants) != nil ||
		len(grants) != 1 || grants[0].Client != "cli" {
		t.Errorf("GET /miniapp/oidc/grants: %s", body)
	}
	miniapp := func(args ...string) string {
		out, err := exec.Command(buildCaddy(t), append([]string{"miniapp"}, append(args, "--address", "localhost:2999")...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("caddy miniapp %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	if out := miniapp("oidc-grants", "carol"); !strings.Contains(out, "CLIENT") || !strings.Contains(out, " cli ") {
		t.Errorf("oidc-grants:\n%s", out)
	}
	if out := miniapp("oidc-revoke", "carol"); out != "revoked 1 OpenID Connect grants of carol\n" {
		t.Errorf("oidc-revoke: %q", out)
	}
	if _, err := cli.TokenSource(o.ctx, cliTok).Token(); err == nil || !strings.Contains(err.Error(), "invalid_grant") {
		t.Errorf("refresh after oidc-revoke: %v", err)
	}
	if out := miniapp("oidc-rotate-key"); !strings.HasPrefix(out, "new signing key ") {
		t.Errorf("oidc-rotate-key: %q", out)
	}
	var keys struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if _, body := call(t, o.client(), "GET", o.issuer+"/miniapp/oidc/keys", ""); json.Unmarshal([]byte(body), &keys) != nil || len(keys.Keys) != 2 {
		t.Errorf("the key set after a rotation: %s", body)
	}
	cliTok = offline("st-9")

	// end_session: without a hint, the sign-out page and nothing ends;
	// with the hint of the browser's session, it ends, grafana hears of
	// it on its back channel, and the browser goes to the registered
	// post-logout URI
	second := o.client()
	back = o.authorize(t, second, grafana.AuthCodeURL("st-10", oauth2.S256ChallengeOption(verifier)), "carol", adaPassword)
	tok2, err := grafana.Exchange(o.ctx, back.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	hint, _ := tok2.Extra("id_token").(string)
	endSession := o.issuer + oidc.EndSessionPath + "?" + url.Values{"id_token_hint": {hint}, "state": {"bye-1"},
		"post_logout_redirect_uri": {"http://127.0.0.1:9/rp/bye"}}.Encode()
	if resp, body := call(t, second, "GET", o.issuer+oidc.EndSessionPath, "", "Accept", "text/html"); resp.StatusCode != http.StatusOK ||
		!strings.Contains(body, `action="/logout"`) || o.user(second) != "carol" {
		t.Errorf("end_session without a hint: %d", resp.StatusCode)
	}
	if resp, _ := call(t, browser, "GET", endSession, "", "Accept", "text/html"); resp.StatusCode != http.StatusOK || o.user(browser) != "carol" {
		t.Errorf("end_session with another session's hint: %d", resp.StatusCode)
	}
	resp, _ = call(t, second, "GET", endSession, "", "Accept", "text/html")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "http://127.0.0.1:9/rp/bye?state=bye-1" || o.user(second) != "" {
		t.Errorf("end_session with the session's hint: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	claims2 := o.logoutClaims(t, "grafana")
	var sid struct {
		SID string `json:"sid"`
	}
	if idToken2, err := o.provider.VerifierContext(o.ctx, &gooidc.Config{ClientID: "grafana"}).Verify(o.ctx, hint); err != nil ||
		idToken2.Claims(&sid) != nil || sid.SID == "" || claims2["sid"] != sid.SID {
		t.Errorf("back-channel logout of end_session: %v, the ID token's sid %q", claims2, sid.SID)
	}

	// sign out everywhere ends the tokens, offline ones too
	if resp, _ := call(t, browser, "POST", o.issuer+"/logout", "all=1", "Origin", o.issuer); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign out everywhere: %d", resp.StatusCode)
	}
	if _, err := o.provider.UserInfo(o.ctx, oauth2.StaticTokenSource(cliTok)); err == nil {
		t.Error("userinfo after sign out everywhere")
	}
	if _, err := cli.TokenSource(o.ctx, cliTok).Token(); err == nil || !strings.Contains(err.Error(), "invalid_grant") {
		t.Errorf("refresh after sign out everywhere: %v", err)
	}
	if claims := o.logoutClaims(t, "grafana"); claims["sub"] != idToken.Subject || claims["sid"] != nil {
		t.Errorf("back-channel logout of sign out everywhere: %v", claims)
	}

	// a token, code or secret in the URL of an endpoint that takes
	// them is refused, and its URL kept out of the access log
	for _, target := range []string{oidc.UserinfoPath + "?access_token=" + tok.AccessToken,
		oidc.TokenPath + "?grant_type=authorization_code&code=" + code + "&client_secret=" + oidcSecret} {
		if resp, _ := call(t, o.client(), "POST", o.issuer+target, "client_id=grafana"); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("POST %s: %d, want 400", strings.SplitN(target, "?", 2)[0], resp.StatusCode)
		}
	}

	// no code nor ID token reached Caddy's access log, whose lines
	// record URIs and response headers
	call(t, o.client(), "GET", o.issuer+"/miniapp/oidc/keys", "")
	if !o.accessLogHas("/miniapp/oidc/keys") {
		t.Fatal("no access log line of the last request")
	}
	accessLog, err := os.ReadFile(o.logFile)
	if err != nil {
		t.Fatal(err)
	}
	for name, secret := range map[string]string{"a code": code, "an ID token": hint, "an access token": tok.AccessToken, "a client secret": oidcSecret} {
		if strings.Contains(string(accessLog), secret) {
			t.Errorf("the access log holds %s", name)
		}
	}
}

// user is who the browser is signed in as on the issuer's site, empty
// for no one.
func (o *oidcSite) user(c *http.Client) string {
	var p profileJSON
	if resp, body := call(o.t, c, "GET", o.issuer+"/profile", "", "Accept", "application/json"); resp.StatusCode == http.StatusOK {
		_ = json.Unmarshal([]byte(body), &p)
	}
	return p.Username
}

// logoutClaims waits for the next logout token grafana receives and
// checks its type, signature and audience.
func (o *oidcSite) logoutClaims(t *testing.T, clientID string) map[string]any {
	t.Helper()
	var raw string
	select {
	case raw = <-o.logouts:
	case <-time.After(10 * time.Second):
		t.Fatal("no logout token")
	}
	sig, err := jose.ParseSignedCompact(raw, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil || sig.Signatures[0].Header.ExtraHeaders["typ"] != "logout+jwt" {
		t.Fatalf("logout token: %v", err)
	}
	token, err := o.provider.VerifierContext(o.ctx, &gooidc.Config{ClientID: clientID}).Verify(o.ctx, raw)
	if err != nil {
		t.Fatalf("logout token: %v", err)
	}
	var claims map[string]any
	if err := token.Claims(&claims); err != nil {
		t.Fatal(err)
	}
	return claims
}
