package miniapp

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/caddy-miniapp/miniapp/internal/routes"
)

// TestCaddyTrust: with remember_second_factor, a code step with "trust
// this browser" lets that browser's next password sign-in skip the code
// (a session of two factors, trusted), while another browser is asked
// for it; the trusted session cannot replace the factor nor delete a
// passkey without a current code; stopping the trust on the profile, and sign out everywhere, end
// it.
func TestCaddyTrust(t *testing.T) {
	n := newNode(t, t.TempDir())
	n.store = "remember_second_factor 30d"
	n.writeConfig("ok")
	n.start()
	n.ready()
	setup := signInAs(t, n, "ada", adaPassword)
	_, recovery := enrolOver(t, setup, n.url(""))
	password := "username=ada&password=" + url.QueryEscape(adaPassword)
	// a passkey, from the fresh session of two factors the setup left
	auth := newAuthenticator(t, "localhost")
	resp, body := call(t, setup, "POST", n.url(routes.PasskeysPath), "action=begin", "Accept", "application/json", "Origin", n.url(""))
	var options map[string]any
	if err := json.Unmarshal([]byte(body), &options); err != nil || resp.StatusCode != 200 {
		t.Fatalf("a passkey's registration: %d %s", resp.StatusCode, body)
	}
	finish, _ := json.Marshal(map[string]any{"ceremony": options["ceremony"], "credential": auth.create(options, n.url("")), "name": "laptop"})
	if resp, body := call(t, setup, "POST", n.url(routes.PasskeysPath), string(finish), "Content-Type", "application/json", "Accept", "application/json",
		"Origin", n.url("")); resp.StatusCode != 201 {
		t.Fatalf("a passkey's registration: %d %s", resp.StatusCode, body)
	}
	passkeyID := b64url.EncodeToString(auth.id)

	c := browserOf(t)
	resp, _ = call(t, c, "POST", n.url("/login"), password, "Accept", "text/html", "Origin", n.url(""))
	if resp.StatusCode != 303 || !strings.HasPrefix(resp.Header.Get("Location"), "/login?step=code") {
		t.Fatalf("a password of an account with a factor: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if _, page := call(t, c, "GET", n.url("/login?step=code"), "", "Accept", "text/html"); !strings.Contains(page, `name="trust_browser"`) ||
		!strings.Contains(page, "Trust this browser for 30 days") {
		t.Error("the code step does not offer to trust the browser")
	}
	resp, _ = call(t, c, "POST", n.url("/login"), "code="+recovery[0]+"&trust_browser=1", "Accept", "text/html", "Origin", n.url(""))
	if resp.StatusCode != 303 || !strings.Contains(strings.Join(resp.Header.Values("Set-Cookie"), " "), "miniapp_session_trust=") {
		t.Fatalf("the code step with trust_browser: %d %v", resp.StatusCode, resp.Header.Values("Set-Cookie"))
	}

	// the trusted browser signs in with its password alone
	call(t, c, "POST", n.url("/logout"), "", "Origin", n.url(""))
	if resp, _ := call(t, c, "POST", n.url("/login"), password, "Accept", "text/html", "Origin", n.url("")); resp.StatusCode != 303 ||
		resp.Header.Get("Location") != "/profile" {
		t.Fatalf("a password on the trusted browser: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	var prof struct {
		Factors  int  `json:"factors"`
		Trusted  bool `json:"trusted"`
		Browsers []struct {
			ID string `json:"id"`
		} `json:"trusted_browsers"`
	}
	_, body = call(t, c, "GET", n.url("/profile"), "", "Accept", "application/json")
	if err := json.Unmarshal([]byte(body), &prof); err != nil || prof.Factors != 2 || !prof.Trusted || len(prof.Browsers) != 1 {
		t.Fatalf("the trusted session's profile: %s", body)
	}
	if resp, _ := call(t, browserOf(t), "POST", n.url("/login"), password, "Accept", "application/json", "Origin", n.url("")); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("a password on another browser: %d, want the code step's 401", resp.StatusCode)
	}
	// never a step-up: replacing the factor still needs a current code,
	// which a fresh sign-in of two factors would not
	if resp, _ := call(t, c, "POST", n.url("/profile/totp"), "", "Accept", "application/json", "Origin", n.url("")); resp.StatusCode != http.StatusForbidden {
		t.Errorf("the trusted session replacing the factor without a code: %d", resp.StatusCode)
	}
	deletePasskey := "action=delete&id=" + passkeyID
	if resp, _ := call(t, c, "POST", n.url(routes.PasskeysPath), deletePasskey, "Accept", "application/json", "Origin", n.url("")); resp.StatusCode != http.StatusForbidden {
		t.Errorf("the trusted session deleting a passkey without a code: %d", resp.StatusCode)
	}
	if resp, body := call(t, c, "POST", n.url(routes.PasskeysPath), deletePasskey+"&current_code="+recovery[2], "Accept", "application/json",
		"Origin", n.url("")); resp.StatusCode != http.StatusOK {
		t.Errorf("the trusted session deleting a passkey with a current code: %d %s", resp.StatusCode, body)
	}

	// stopping the trust on the profile
	if resp, _ := call(t, c, "POST", n.url(routes.TrustPath), "id="+prof.Browsers[0].ID, "Accept", "text/html", "Origin", n.url("")); resp.StatusCode != 303 {
		t.Fatalf("stop trusting: %d", resp.StatusCode)
	}
	call(t, c, "POST", n.url("/logout"), "", "Origin", n.url(""))
	if resp, _ := call(t, c, "POST", n.url("/login"), password, "Accept", "application/json", "Origin", n.url("")); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("a password on a browser no longer trusted: %d", resp.StatusCode)
	}

	// sign out everywhere ends a trust too
	resp, _ = call(t, c, "POST", n.url("/login"), "code="+recovery[1]+"&trust_browser=1", "Accept", "text/html", "Origin", n.url(""))
	if resp.StatusCode != 303 {
		t.Fatalf("the code step again: %d", resp.StatusCode)
	}
	call(t, c, "POST", n.url("/logout"), "all=1", "Origin", n.url(""))
	if resp, _ := call(t, c, "POST", n.url("/login"), password, "Accept", "application/json", "Origin", n.url("")); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("a password after sign out everywhere: %d", resp.StatusCode)
	}
}
