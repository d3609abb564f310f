package miniapp

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/routes"
	"github.com/chromedp/chromedp"
)

// TestBrowserInvite: in Chromium, an invite link made with the CLI opens
// the invite page, whose script moves the token from the address's
// fragment into the form (the fragment leaves the address); the new
// password signs grace in on her profile, which links to her own
// password's page; she sets up a second factor, signs out, and at the
// code step trusts the browser: signed out and in again, her password
// alone signs her in. The invite, profile, password and code pages pass
// axe; the screenshots of the invite page and the code step.
func TestBrowserInvite(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: runs Chromium and a real Caddy")
	}
	if _, err := os.Stat(chromiumPath); err != nil {
		missing(t, "Chromium ("+chromiumPath+", Debian package chromium)")
	}
	axe := axeSource(t)
	n := newNode(t, t.TempDir())
	n.store = "remember_second_factor 30d"
	n.writeConfig("ok")
	n.start()
	n.ready()
	out, code := usersCLI(t, n, "user", "add", "grace", "--groups", "staff", "--site", n.url(""))
	if code != 0 {
		t.Fatalf("user add: %s", out)
	}
	link := n.url(routes.InvitePath) + "#" + tokenOf(t, out)
	ctx := browser(t, "")
	run := func(steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatal(err)
		}
	}
	run(chromedp.Navigate(link), chromedp.WaitVisible(chromedp.ID("password")), chromedp.WaitNotVisible(chromedp.ID("token-row")))
	if loc, _ := chromedp.Run(ctx, chromedp.Location()); loc != n.url(routes.InvitePath) {
		t.Errorf("the invite page's address after its script: %s", loc)
	}
	if token, _ := chromedp.Run(ctx, chromedp.Value(chromedp.ID("token"))); "#"+token != link[strings.Index(link, "#"):] {
		t.Error("the script did not put the link's token into the form")
	}
	checkAccessibility(t, ctx, axe, "invite page")
	shots := map[string][]byte{}
	shoot(t, ctx, shots, "invite")
	run(chromedp.EmulateViewport(1280, 800), chromedp.SendKeys(chromedp.ID("password"), "grace hopper wrote the first compiler"),
		chromedp.Click(chromedp.CSS(`button[type="submit"]`)))
	var user string
	for deadline := time.Now().Add(10 * time.Second); user != "grace"; time.Sleep(50 * time.Millisecond) {
		user, _ = chromedp.Run(ctx, chromedp.Text(chromedp.ID("user")))
		if time.Now().After(deadline) {
			loc, _ := chromedp.Run(ctx, chromedp.Location())
			t.Fatalf("after the invite, the browser is at %s showing %q", loc, user)
		}
	}
	run(chromedp.WaitVisible(chromedp.ID("password-title")))
	checkAccessibility(t, ctx, axe, "profile of a managed account")
	run(chromedp.Click(chromedp.CSS(`a[href="/profile/password"]`)), chromedp.WaitVisible(chromedp.ID("new-password")))
	checkAccessibility(t, ctx, axe, "password page")

	// a second factor, then "trust this browser" at the code step
	run(chromedp.Navigate(n.url("/profile/totp")), chromedp.WaitVisible(chromedp.ID("totp-secret")))
	secret, _ := chromedp.Run(ctx, chromedp.Text(chromedp.ID("totp-secret")))
	run(chromedp.SendKeys(chromedp.ID("code"), codeAt(t, strings.ReplaceAll(secret, " ", ""), time.Now())),
		chromedp.Click(chromedp.CSS(`form[action="/profile/totp"] button`)), chromedp.WaitVisible(chromedp.CSS(".codes")))
	recovery, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll(".codes code")].map(c => c.textContent)`))
	if err != nil || len(recovery) != 10 {
		t.Fatalf("recovery codes: %v %v", recovery, err)
	}
	signInAgain := func() {
		t.Helper()
		run(chromedp.Navigate(n.url("/profile")), chromedp.WaitVisible(chromedp.ID("user")),
			chromedp.Click(chromedp.CSS(`form[action="/logout"] button:not(.secondary)`)), chromedp.WaitVisible(chromedp.ID("username")),
			chromedp.SendKeys(chromedp.ID("username"), "grace"), chromedp.SendKeys(chromedp.ID("password"), "grace hopper wrote the first compiler"),
			chromedp.Click(chromedp.CSS(`button[type="submit"]`)))
	}
	signInAgain()
	run(chromedp.WaitVisible(chromedp.ID("trust-browser")))
	checkAccessibility(t, ctx, axe, "code step with trust this browser")
	shoot(t, ctx, shots, "trust-browser")
	run(chromedp.EmulateViewport(1280, 800), chromedp.SendKeys(chromedp.ID("code"), recovery[0]), chromedp.Click(chromedp.ID("trust-browser")),
		chromedp.Click(chromedp.CSS(`button[type="submit"]`)), chromedp.WaitVisible(chromedp.ID("trusts-title")))
	signInAgain()
	run(chromedp.WaitVisible(chromedp.ID("user")))
	if loc, _ := chromedp.Run(ctx, chromedp.Location()); loc != n.url("/profile") {
		t.Errorf("a password on the trusted browser led to %s", loc)
	}
	saveShots(t, shots)
}
