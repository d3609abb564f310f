package routes

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/totp"
	"github.com/caddy-miniapp/miniapp/internal/web"
	"github.com/pquerna/otp"
	rfc6238 "github.com/pquerna/otp/totp"
)

// codeFor is the code of the secret at the App's time.
func (x *tester) codeFor(secret string) string {
	x.t.Helper()
	code, err := rfc6238.GenerateCodeCustom(secret, x.a.Clock.Now(), rfc6238.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		x.t.Fatal(err)
	}
	return code
}

var jsonAccept = []string{"Accept", "application/json"}

func TestSecondFactor(t *testing.T) {
	x := newTester(t, nil)
	c := x.login()
	w := x.serve((*App).SecondFactor, call{method: "GET", target: "/profile/totp", cookie: c, header: []string{"Accept", "text/html"}})
	if w.Code != http.StatusOK || !strings.Contains(w.Header().Get("Content-Security-Policy"), "img-src 'self' data:") ||
		!strings.Contains(w.Body.String(), `name="enrollment"`) {
		t.Fatalf("the page: %d %q, want a setup whose QR code the policy lets in", w.Code, w.Header().Get("Content-Security-Policy"))
	}
	w = x.serve((*App).SecondFactor, call{method: "POST", target: "/profile/totp", form: "action=", cookie: c, header: jsonAccept})
	var s totp.Setup
	if err := json.Unmarshal(w.Body.Bytes(), &s); err != nil || s.Secret == "" || s.Enrollment == "" {
		t.Fatalf("begin: %d %s", w.Code, w.Body)
	}
	enrol := "enrollment=" + url.QueryEscape(s.Enrollment)
	w = x.serve((*App).SecondFactor, call{method: "POST", target: "/profile/totp", form: enrol + "&code=000000", cookie: c, header: jsonAccept})
	if w.Code != http.StatusBadRequest || !x.counts.has("second factor failure wrong_code") {
		t.Errorf("a wrong first code: %d, want 400 and counted", w.Code)
	}
	w = x.serve((*App).SecondFactor, call{method: "POST", target: "/profile/totp", form: enrol + "&code=" + x.codeFor(s.Secret), cookie: c, header: jsonAccept})
	var codes map[string][]string
	if err := json.Unmarshal(w.Body.Bytes(), &codes); err != nil || len(codes["recovery_codes"]) != 10 {
		t.Fatalf("confirm: %d %s", w.Code, w.Body)
	}
	if !x.a.TOTP.StatusOf("ada").TOTP {
		t.Fatal("the factor was not stored")
	}
	// the new session of two factors, and a code of another step
	c = w.Result().Cookies()[0]
	x.a.Clock.Advance(31 * time.Second)
	w = x.serve((*App).SecondFactor, call{method: "POST", target: "/profile/totp", form: "action=disable", cookie: c, header: jsonAccept})
	if w.Code != http.StatusBadRequest || !x.a.TOTP.StatusOf("ada").TOTP {
		t.Errorf("disable without a code: %d, want 400 and the factor kept", w.Code)
	}
	w = x.serve((*App).SecondFactor, call{method: "POST", target: "/profile/totp", form: "action=disable&code=" + x.codeFor(s.Secret), cookie: c, header: jsonAccept})
	if w.Code != http.StatusOK || x.a.TOTP.StatusOf("ada").TOTP {
		t.Errorf("disable with a code: %d %s, want the factor gone", w.Code, w.Body)
	}
	w = x.serve((*App).SecondFactor, call{method: "POST", target: "/profile/totp", form: "action=other", cookie: c})
	if w.Code != http.StatusBadRequest {
		t.Errorf("another action: %d, want 400", w.Code)
	}
}

func TestIssuer(t *testing.T) {
	x := newTester(t, nil)
	if got := x.a.issuer(web.Request{Host: "example.com"}); got != "example.com" {
		t.Errorf("issuer = %q, want the host", got)
	}
	x.a.totpIssuer = "Company"
	if got := x.a.issuer(web.Request{Host: "example.com"}); got != "Company" {
		t.Errorf("issuer = %q, want totp_issuer", got)
	}
}
