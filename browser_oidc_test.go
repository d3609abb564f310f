package miniapp

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// TestBrowserOpenIDConnect: in Chromium, an app's "Sign in" link leads
// through the realm's login page (its form's redirect allowed by the
// page's form-action) back to the app, signed in; the login page and the
// profile listing the app pass axe.
func TestBrowserOpenIDConnect(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: runs Chromium and a real Caddy")
	}
	if _, err := os.Stat(chromiumPath); err != nil {
		missing(t, "Chromium ("+chromiumPath+", Debian package chromium)")
	}
	axe := axeSource(t)
	issuer := httpBase
	var app *oauth2.Config
	var provider *gooidc.Provider
	verifier := oauth2.GenerateVerifier()
	rp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if r.URL.Path != "/cb" {
			_, _ = fmt.Fprintf(w, `<!DOCTYPE html><title>App</title><a id="signin" href="%s">Sign in</a>`,
				app.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier), oauth2.AccessTypeOffline))
			return
		}
		tok, err := app.Exchange(r.Context(), r.URL.Query().Get("code"), oauth2.VerifierOption(verifier))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		info, err := provider.UserInfo(r.Context(), oauth2.StaticTokenSource(tok))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		var claims struct {
			Name string `json:"preferred_username"`
		}
		_ = info.Claims(&claims)
		_, _ = fmt.Fprintf(w, `<!DOCTYPE html><title>App</title><p id="who">app user=%s</p>`, claims.Name)
	}))
	t.Cleanup(rp.Close)
	startCaddy(t, t.TempDir(), fmt.Sprintf(`oidc {
			issuer %s
			client notes {
				secret %s
				redirect_uri %s/cb
				name "Team notes"
			}
		}`, issuer, oidcSecret, rp.URL))
	var err error
	if provider, err = gooidc.NewProvider(t.Context(), issuer); err != nil {
		t.Fatal(err)
	}
	app = &oauth2.Config{ClientID: "notes", ClientSecret: oidcSecret, Endpoint: provider.Endpoint(), RedirectURL: rp.URL + "/cb",
		Scopes: []string{gooidc.ScopeOpenID, "profile", gooidc.ScopeOfflineAccess}}

	ctx := browser(t, "")
	run := func(steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatal(err)
		}
	}
	run(chromedp.Navigate(rp.URL+"/"), chromedp.Click(chromedp.ID("signin")), chromedp.WaitVisible(chromedp.ID("username")))
	if loc, _ := chromedp.Run(ctx, chromedp.Location()); !strings.HasPrefix(loc, issuer+"/login?next=") {
		t.Fatalf("the app's sign-in link led to %s", loc)
	}
	checkAccessibility(t, ctx, axe, "login page of an app's sign-in")
	run(chromedp.SendKeys(chromedp.ID("username"), "ada"), chromedp.SendKeys(chromedp.ID("password"), adaPassword),
		chromedp.Click(chromedp.CSS(`button[type="submit"]`)))
	var who string
	for deadline := time.Now().Add(10 * time.Second); who != "app user=ada"; time.Sleep(50 * time.Millisecond) {
		who, _ = chromedp.Run(ctx, chromedp.Text(chromedp.ID("who")))
		if time.Now().After(deadline) {
			loc, _ := chromedp.Run(ctx, chromedp.Location())
			t.Fatalf("after signing in, the browser is at %s showing %q", loc, who)
		}
	}
	run(chromedp.Navigate(issuer+"/profile"), chromedp.WaitVisible(chromedp.ID("apps-title")))
	if text, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`ul[aria-labelledby="apps-title"]`))); !strings.Contains(text, "Team notes") {
		t.Errorf("the profile's apps: %q", text)
	}
	checkAccessibility(t, ctx, axe, "profile with an app")
}
