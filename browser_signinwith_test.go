package miniapp

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestBrowserSignInWith: in Chromium, the login page's provider button
// leads through another site's provider (this module's own, where carol
// signs in) and back, signed in as the linked ada; the login page with
// its buttons and the profile with the links pass axe; the README's
// screenshot of the login page with providers.
func TestBrowserSignInWith(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: runs Chromium and a real Caddy")
	}
	if _, err := os.Stat(chromiumPath); err != nil {
		missing(t, "Chromium ("+chromiumPath+", Debian package chromium)")
	}
	axe := axeSource(t)
	s := startWith(t, fakeGitHub(t).URL)
	ctx := browser(t, "")
	run := func(steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatal(err)
		}
	}
	run(chromedp.Navigate(s.app+"/login?next=/profile"), chromedp.WaitVisible(chromedp.CSS(`a[href^="/login/with/company"]`)))
	checkAccessibility(t, ctx, axe, "login page with providers")
	shots := map[string][]byte{}
	shoot(t, ctx, shots, "login-providers")
	run(chromedp.Click(chromedp.CSS(`a[href^="/login/with/company"]`)), chromedp.WaitVisible(chromedp.ID("username")))
	if loc, _ := chromedp.Run(ctx, chromedp.Location()); !strings.HasPrefix(loc, s.idp+"/login?next=") {
		t.Fatalf("the provider's button led to %s", loc)
	}
	run(chromedp.SendKeys(chromedp.ID("username"), "carol"), chromedp.SendKeys(chromedp.ID("password"), adaPassword),
		chromedp.Click(chromedp.CSS(`button[type="submit"]`)))
	var user string
	for deadline := time.Now().Add(10 * time.Second); user != "ada"; time.Sleep(50 * time.Millisecond) {
		user, _ = chromedp.Run(ctx, chromedp.Text(chromedp.ID("user")))
		if time.Now().After(deadline) {
			loc, _ := chromedp.Run(ctx, chromedp.Location())
			t.Fatalf("after signing in at the provider, the browser is at %s showing %q", loc, user)
		}
	}
	if loc, _ := chromedp.Run(ctx, chromedp.Location()); loc != s.app+"/profile" {
		t.Errorf("signed in at %s, want the login's next", loc)
	}
	run(chromedp.WaitVisible(chromedp.ID("links-title")))
	checkAccessibility(t, ctx, axe, "profile with links to providers")
	saveShots(t, shots)
}
