package miniapp

import (
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp"
	rfc6238 "github.com/pquerna/otp/totp"
)

// codeAt is the secret's code at t, as an authenticator app shows it.
func codeAt(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	code, err := rfc6238.GenerateCodeCustom(secret, at, rfc6238.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		t.Fatal(err)
	}
	return code
}

// enrolOver sets up a second factor through the JSON API of a running
// Caddy with the client's session, and returns its secret and recovery
// codes. The client's jar takes the new session.
func enrolOver(t *testing.T, c *http.Client, base string) (string, []string) {
	t.Helper()
	resp, body := call(t, c, "POST", base+"/profile/totp", "", "Accept", "application/json")
	var begin struct{ Secret, Enrollment string }
	if err := json.Unmarshal([]byte(body), &begin); err != nil || resp.StatusCode != 200 {
		t.Fatalf("begin: %d %q", resp.StatusCode, body)
	}
	resp, body = call(t, c, "POST", base+"/profile/totp", "enrollment="+url.QueryEscape(begin.Enrollment)+"&code="+codeAt(t, begin.Secret, time.Now()),
		"Accept", "application/json")
	var done struct {
		RecoveryCodes []string `json:"recovery_codes"`
	}
	if err := json.Unmarshal([]byte(body), &done); err != nil || resp.StatusCode != 200 || len(done.RecoveryCodes) != 10 {
		t.Fatalf("confirm: %d %q", resp.StatusCode, body)
	}
	return begin.Secret, done.RecoveryCodes
}

// TestCaddyTOTP: the whole second factor flow with JSON through a real
// Caddy: set up, a password alone asks for the code, the code step, a
// code used once, a recovery code, and the admin API's reset.
func TestCaddyTOTP(t *testing.T) {
	s := startCaddy(t, t.TempDir(), "")
	setup := s.client()
	if resp, _ := call(t, setup, "POST", httpsBase+"/login", "username=ada&password="+adaPassword); resp.StatusCode != 303 {
		t.Fatalf("login: %d", resp.StatusCode)
	}
	secret, recovery := enrolOver(t, setup, httpsBase)

	c := s.client()
	resp, body := call(t, c, "POST", httpsBase+"/login", "username=ada&password="+adaPassword, "Accept", "application/json")
	if resp.StatusCode != 401 || body != `{"error":"second factor required","second_factor":["totp"]}` {
		t.Fatalf("a password alone: %d %q", resp.StatusCode, body)
	}
	// the setup used this step's code; the next step's is within the skew
	next := codeAt(t, secret, time.Now().Add(30*time.Second))
	resp, body = call(t, c, "POST", httpsBase+"/login", "code="+next, "Accept", "application/json")
	if resp.StatusCode != 200 || body != `{"username":"ada"}` {
		t.Fatalf("the code step: %d %q", resp.StatusCode, body)
	}
	_, body = call(t, c, "GET", httpsBase+"/profile", "", "Accept", "application/json")
	if !strings.Contains(body, `"factors":2,"second_factor":{"totp":true,"recovery_codes_left":10}`) {
		t.Errorf("profile: %s", body)
	}
	if resp, _ := call(t, s.client(), "POST", httpsBase+"/login", "username=ada&password="+adaPassword+"&code="+next, "Accept", "application/json"); resp.StatusCode != 401 {
		t.Errorf("the code again: %d", resp.StatusCode)
	}
	if resp, _ := call(t, s.client(), "POST", httpsBase+"/login", "username=ada&password="+adaPassword+"&code="+recovery[0], "Accept", "application/json"); resp.StatusCode != 200 {
		t.Errorf("a recovery code: %d", resp.StatusCode)
	}

	admin := s.client()
	_, body = call(t, admin, "GET", "http://localhost:2999/miniapp/totp?user=ada", "")
	if strings.TrimSpace(body) != `{"enrolled":true,"recovery_codes_left":9}` {
		t.Errorf("admin GET: %s", body)
	}
	resp, body = call(t, admin, "DELETE", "http://localhost:2999/miniapp/totp?user=ada", "")
	if resp.StatusCode != 200 || !strings.Contains(body, `"removed":true`) {
		t.Fatalf("admin DELETE: %d %s", resp.StatusCode, body)
	}
	if resp, _ := call(t, c, "GET", httpsBase+"/profile", "", "Accept", "application/json"); resp.StatusCode != 401 {
		t.Errorf("a session after the reset: %d", resp.StatusCode)
	}
	if _, body := call(t, admin, "GET", "http://localhost:2999/miniapp/totp?user=ada", ""); strings.TrimSpace(body) != `{"enrolled":false,"recovery_codes_left":0}` {
		t.Errorf("admin GET after the reset: %s", body)
	}
	if resp, _ := call(t, s.client(), "POST", httpsBase+"/login", "username=ada&password="+adaPassword, "Accept", "application/json"); resp.StatusCode != 200 {
		t.Errorf("a password alone after the reset: %d", resp.StatusCode)
	}
	log, err := os.ReadFile(s.debugLog)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(log), `"msg":"second factor removed"`) || strings.Contains(string(log), secret) || strings.Contains(string(log), recovery[0]) {
		t.Errorf("the reset is not logged, or a secret is")
	}
}

// TestCaddySecondFactorRequired: with second_factor required, a password
// gives a session that can only set up a factor; then it has two.
func TestCaddySecondFactorRequired(t *testing.T) {
	s := startCaddy(t, t.TempDir(), "second_factor required")
	c := s.client()
	if resp, _ := call(t, c, "POST", httpsBase+"/login", "username=grace&password="+gracePassword, "Accept", "application/json"); resp.StatusCode != 200 {
		t.Fatalf("login: %d", resp.StatusCode)
	}
	resp, body := call(t, c, "GET", httpsBase+"/profile", "", "Accept", "application/json")
	if resp.StatusCode != 403 || body != `{"error":"second factor enrollment required"}` {
		t.Fatalf("profile before enrolment: %d %q", resp.StatusCode, body)
	}
	if resp, _ := call(t, c, "GET", httpsBase+"/private/", "", "Accept", "text/html"); resp.StatusCode != 303 || resp.Header.Get("Location") != "/profile/totp" {
		t.Errorf("a protected page before enrolment: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	enrolOver(t, c, httpsBase)
	_, body = call(t, c, "GET", httpsBase+"/profile", "", "Accept", "application/json")
	if !strings.Contains(body, `"factors":2`) {
		t.Errorf("profile after enrolment: %s", body)
	}
}
