package miniapp

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image/png"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/session"
	cdppage "github.com/chromedp/cdproto/page"
	cdpwebauthn "github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/device"
)

const chromiumPath = "/usr/bin/chromium"

// axeVersion is the axe-core release the accessibility check loads from
// the npm registry.
const axeVersion = "4.14.1"

// missing skips a test for want of a tool outside CI, and fails it in CI,
// where .ci/run installs the tool: a skipped browser test must not pass
// CI unseen.
func missing(t *testing.T, what string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is missing in CI; .ci/run installs it", what)
	}
	t.Skipf("%s is missing: skipping the browser test (install it as .ci/run does)", what)
}

// TestBrowser walks through the app in headless Chromium over HTTPS with
// Caddy's internal CA, checks the pages with axe-core, and takes the
// screenshots of the README (written to docs/ with -update).
func TestBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: runs Chromium and a real Caddy")
	}
	if _, err := os.Stat(chromiumPath); err != nil {
		missing(t, "Chromium ("+chromiumPath+", Debian package chromium)")
	}
	axe := axeSource(t)
	storage := t.TempDir()
	// a name of this run alone: the process's certificate cache may hold
	// a certificate for localhost from another test's local CA, which this
	// test's storage does not know
	host := fmt.Sprintf("browser-%x.localhost", session.Random(4))
	startCaddyFor(t, storage, "", host)
	base := fmt.Sprintf("https://%s:%d", host, httpsPort)

	ctx := browser(t, trustedKeys(t, storage, host))
	run := func(steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatal(err)
		}
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return strings.TrimSpace(s)
	}
	location := func() string {
		t.Helper()
		loc, err := chromedp.Run(ctx, chromedp.Location())
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimPrefix(loc, base)
	}
	shots := map[string][]byte{}
	screenshot := func(name string) {
		t.Helper()
		shoot(t, ctx, shots, name)
	}

	run(chromedp.Navigate(base+"/"), chromedp.Click(chromedp.CSS(`a[href="/login"]`)), chromedp.WaitVisible(chromedp.ID("username")))
	if loc := location(); loc != "/login" {
		t.Fatalf("the home page link led to %s", loc)
	}
	run(chromedp.SendKeys(chromedp.ID("username"), "ada"), chromedp.SendKeys(chromedp.ID("password"), "not her password"),
		chromedp.Click(chromedp.CSS(`button[type="submit"]`)), chromedp.WaitVisible(chromedp.CSS(`[role="alert"]`)))
	if msg := text(`[role="alert"]`); msg != "Invalid username or password" {
		t.Fatalf("wrong password shows %q", msg)
	}
	checkAccessibility(t, ctx, axe, "login page with an error")
	run(chromedp.Navigate(base+"/login"), chromedp.WaitVisible(chromedp.ID("username")))
	// the stylesheet is its own file: the CSP must let it apply
	radius, err := chromedp.Run(ctx, chromedp.Evaluate[string](`getComputedStyle(document.querySelector("main")).borderTopLeftRadius`))
	if err != nil || radius != "12px" {
		t.Fatalf("the stylesheet did not apply: main's border radius %q (%v)", radius, err)
	}
	screenshot("login")

	run(chromedp.SendKeys(chromedp.ID("username"), "ada"), chromedp.SendKeys(chromedp.ID("password"), adaPassword),
		chromedp.Click(chromedp.CSS(`button[type="submit"]`)), chromedp.WaitVisible(chromedp.ID("user")))
	if loc, user := location(), text("#user"); loc != "/profile" || user != "ada" {
		t.Fatalf("after login: %s shows %q", loc, user)
	}
	// a second browser, an iPhone's, signs in as ada too: the first
	// lists both sessions, then ends the iPhone's from its page
	phone, cancelPhone := chromedp.NewContext(ctx, chromedp.WithNewBrowserContext())
	defer cancelPhone()
	if err := chromedp.Do(phone, chromedp.Emulate(device.IPhone13), chromedp.Navigate(base+"/login"), chromedp.WaitVisible(chromedp.ID("username")),
		chromedp.SendKeys(chromedp.ID("username"), "ada"), chromedp.SendKeys(chromedp.ID("password"), adaPassword),
		chromedp.Click(chromedp.CSS(`button[type="submit"]`)), chromedp.WaitVisible(chromedp.ID("user"))); err != nil {
		t.Fatalf("the second browser's login: %v", err)
	}
	run(chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS(`ul[aria-labelledby="sessions-title"] form button`)))
	if rows := text(`ul[aria-labelledby="sessions-title"]`); !strings.Contains(rows, "Safari on iPhone") || strings.Count(rows, "this device") != 1 {
		t.Fatalf("the profile's sessions: %q", rows)
	}
	screenshot("profile")
	checkAccessibility(t, ctx, axe, "profile page")
	run(chromedp.Click(chromedp.CSS(`ul[aria-labelledby="sessions-title"] form button`)), chromedp.WaitNotPresent(chromedp.CSS(`ul[aria-labelledby="sessions-title"] form`)))
	if rows := text(`ul[aria-labelledby="sessions-title"]`); location() != "/profile" || strings.Contains(rows, "iPhone") || !strings.Contains(rows, "this device") {
		t.Fatalf("after ending the iPhone's session: %s lists %q", location(), rows)
	}
	if err := chromedp.Do(phone, chromedp.Navigate(base+"/profile"), chromedp.WaitVisible(chromedp.ID("username"))); err != nil {
		t.Fatalf("the ended session's profile: %v", err)
	}
	if loc, err := chromedp.Run(phone, chromedp.Location()); err != nil || loc != base+"/login?next=%2Fprofile" {
		t.Fatalf("the ended session's profile led to %s (%v)", loc, err)
	}

	run(chromedp.Reload(), chromedp.WaitVisible(chromedp.ID("user")))
	if user := text("#user"); user != "ada" {
		t.Fatalf("after reload: %q", user)
	}

	run(chromedp.Click(chromedp.CSS(`form[action="/logout"] button:not(.secondary)`)), chromedp.WaitVisible(chromedp.ID("username")))
	if loc := location(); loc != "/login" {
		t.Fatalf("logout led to %s", loc)
	}
	run(chromedp.Navigate(base+"/profile"), chromedp.WaitVisible(chromedp.ID("username")))
	if loc := location(); loc != "/login?next=%2Fprofile" {
		t.Fatalf("profile after logout led to %s", loc)
	}

	run(chromedp.Navigate(base+"/hello?name=%zz"), chromedp.WaitVisible(chromedp.CSS(`[role="alert"]`)))
	checkAccessibility(t, ctx, axe, "error page")

	// grace sets up two-step sign-in from her profile, with codes the
	// test computes from the key the page shows, as an app would
	run(chromedp.Navigate(base+"/login"), chromedp.WaitVisible(chromedp.ID("username")),
		chromedp.SendKeys(chromedp.ID("username"), "grace"), chromedp.SendKeys(chromedp.ID("password"), gracePassword),
		chromedp.Click(chromedp.CSS(`button[type="submit"]`)), chromedp.WaitVisible(chromedp.ID("factor-status")))
	if status := text("#factor-status"); status != "Off" {
		t.Fatalf("the profile's second factor: %q", status)
	}
	run(chromedp.Click(chromedp.CSS(`a[href="/profile/totp"]`)), chromedp.WaitVisible(chromedp.ID("totp-secret")))
	drawn, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.querySelector(".steps img").naturalWidth > 0`))
	if err != nil || !drawn {
		t.Fatalf("the QR code is not drawn (CSP img-src data:?): %v", err)
	}
	secret := text("#totp-secret")
	screenshot("totp-setup")
	checkAccessibility(t, ctx, axe, "second factor setup page")
	run(chromedp.SendKeys(chromedp.ID("code"), codeAt(t, secret, time.Now())),
		chromedp.Click(chromedp.CSS(`form[action="/profile/totp"] button`)), chromedp.WaitVisible(chromedp.CSS(".codes")))
	codes, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll(".codes code").length`))
	if err != nil || codes != 10 {
		t.Fatalf("recovery codes shown: %d (%v)", codes, err)
	}
	screenshot("totp-recovery-codes")
	checkAccessibility(t, ctx, axe, "recovery codes page")
	run(chromedp.Navigate(base+"/profile/totp"), chromedp.WaitVisible(chromedp.ID("codes-left")))
	if left, shown := text("#codes-left"), text("main"); left != "10" || strings.Contains(shown, "shown only this once") {
		t.Fatalf("the codes are shown again, or %q left", left)
	}
	run(chromedp.Navigate(base+"/profile"), chromedp.WaitVisible(chromedp.ID("user")),
		chromedp.Click(chromedp.CSS(`form[action="/logout"] button:not(.secondary)`)), chromedp.WaitVisible(chromedp.ID("username")),
		chromedp.SendKeys(chromedp.ID("username"), "grace"), chromedp.SendKeys(chromedp.ID("password"), gracePassword),
		chromedp.Click(chromedp.CSS(`button[type="submit"]`)), chromedp.WaitVisible(chromedp.ID("code")))
	if loc := location(); loc != "/login?step=code" {
		t.Fatalf("the password led to %s", loc)
	}
	screenshot("totp-code")
	checkAccessibility(t, ctx, axe, "code step")
	// the setup used this step's code; the next step's is within the skew
	run(chromedp.SendKeys(chromedp.ID("code"), codeAt(t, secret, time.Now().Add(30*time.Second))),
		chromedp.Click(chromedp.CSS(`button[type="submit"]`)), chromedp.WaitVisible(chromedp.ID("user")))
	if user, status := text("#user"), text("#factor-status"); user != "grace" || status != "On · recovery codes left: 10" {
		t.Fatalf("after the code: %q, second factor %q", user, status)
	}

	// grace adds a passkey (Chromium's virtual authenticator: resident
	// keys, user verification), signs out, and signs in with it without
	// typing her name; then renames and deletes it
	if _, err := chromedp.Call(ctx, cdpwebauthn.Enable, cdpwebauthn.EnableParams{}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(ctx, cdpwebauthn.AddVirtualAuthenticator, cdpwebauthn.AddVirtualAuthenticatorParams{Options: &cdpwebauthn.VirtualAuthenticatorOptions{
		Protocol: cdpwebauthn.AuthenticatorProtocolCtap2, Transport: cdpwebauthn.AuthenticatorTransportInternal, HasResidentKey: true,
		HasUserVerification: true, IsUserVerified: true, AutomaticPresenceSimulation: true,
	}}); err != nil {
		t.Fatal(err)
	}
	run(chromedp.WaitVisible(chromedp.ID("passkey-add")), chromedp.SendKeys(chromedp.ID("passkey-name"), "Test key"),
		chromedp.Click(chromedp.ID("passkey-add")), chromedp.WaitVisible(chromedp.CSS(`input[id^="rename-"]`)))
	if listed := text(`[aria-labelledby="passkeys-title"]`); !strings.Contains(listed, "Test key") || !strings.Contains(listed, "last used never") {
		t.Fatalf("the profile's passkeys: %q", listed)
	}
	screenshot("passkeys-profile")
	checkAccessibility(t, ctx, axe, "profile with a passkey")
	// the button: with the autofill's conditional request out of the way
	noAutofill, err := chromedp.Call(ctx, cdppage.AddScriptToEvaluateOnNewDocument, cdppage.AddScriptToEvaluateOnNewDocumentParams{
		Source: `PublicKeyCredential.isConditionalMediationAvailable = async () => false;`})
	if err != nil {
		t.Fatal(err)
	}
	run(chromedp.Click(chromedp.CSS(`form[action="/logout"] button:not(.secondary)`)), chromedp.WaitVisible(chromedp.ID("passkey-signin")))
	screenshot("passkey-login")
	checkAccessibility(t, ctx, axe, "login page with passkeys")
	run(chromedp.Click(chromedp.ID("passkey-signin")), chromedp.WaitVisible(chromedp.ID("user")))
	if loc, user := location(), text("#user"); loc != "/profile" || user != "grace" {
		t.Fatalf("after the passkey button: %s shows %q", loc, user)
	}
	// the autofill (conditional mediation): the virtual authenticator
	// answers at once, as a user picking the passkey in the user name
	// field would
	run(chromedp.Click(chromedp.CSS(`form[action="/logout"] button:not(.secondary)`)), chromedp.WaitVisible(chromedp.ID("passkey-signin")))
	if _, err := chromedp.Call(ctx, cdppage.RemoveScriptToEvaluateOnNewDocument, cdppage.RemoveScriptToEvaluateOnNewDocumentParams(noAutofill)); err != nil {
		t.Fatal(err)
	}
	run(chromedp.Navigate(base+"/login"), chromedp.WaitVisible(chromedp.ID("user")))
	if loc, user := location(), text("#user"); loc != "/profile" || user != "grace" {
		t.Fatalf("after the passkey's autofill: %s shows %q", loc, user)
	}
	run(chromedp.SendKeys(chromedp.CSS(`input[id^="rename-"]`), "Laptop"), chromedp.Click(chromedp.CSS(`button[aria-label^="Rename"]`)),
		chromedp.WaitVisible(chromedp.CSS(`button[aria-label="Delete Laptop"]`)))
	// this session began with the passkey: deleting it signs it out
	run(chromedp.Click(chromedp.CSS(`button[aria-label="Delete Laptop"]`)), chromedp.WaitVisible(chromedp.ID("username")))
	if loc := location(); loc != "/login" {
		t.Fatalf("after deleting the passkey that signed in: %s", loc)
	}
	run(chromedp.Navigate(base+"/profile"), chromedp.WaitVisible(chromedp.ID("username")))

	saveShots(t, shots)
}

// shoot takes the page's screenshots for the README, on a phone and on
// a desktop.
func shoot(t *testing.T, ctx context.Context, shots map[string][]byte, name string) {
	t.Helper()
	for _, size := range []struct {
		suffix        string
		width, height int64
		mobile        bool
	}{{"phone", 390, 844, true}, {"desktop", 1280, 800, false}} {
		opts := []chromedp.EmulateViewportOption{chromedp.EmulateScale(1)}
		if size.mobile {
			opts = append(opts, chromedp.EmulateMobile)
		}
		if err := chromedp.Do(ctx, chromedp.EmulateViewport(size.width, size.height, opts...)); err != nil {
			t.Fatal(err)
		}
		img, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
		if err != nil {
			t.Fatal(err)
		}
		shots[name+"-"+size.suffix+".png"] = img
	}
}

// saveShots checks the screenshots and writes them: to docs/ with
// -update, to a temporary folder otherwise.
func saveShots(t *testing.T, shots map[string][]byte) {
	t.Helper()
	dir := t.TempDir()
	if *update {
		dir = "docs"
	}
	for name, img := range shots {
		cfg, err := png.DecodeConfig(bytes.NewReader(img))
		if err != nil || (strings.Contains(name, "phone") && cfg.Width != 390) || (strings.Contains(name, "desktop") && cfg.Width != 1280) {
			t.Errorf("%s: not a PNG of the viewport width: %v %+v", name, err, cfg)
		}
		if err := os.WriteFile(filepath.Join(dir, name), img, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// trustedKeys returns the SPKI hashes of the certificate chain the test
// Caddy serves, verified against the root of its internal CA: the test's
// own trust, handed to Chromium by flag.
func trustedKeys(t *testing.T, storage, host string) string {
	t.Helper()
	rootPEM, err := os.ReadFile(filepath.Join(storage, "pki", "authorities", "local", "root.crt"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(rootPEM)
	// the first handshakes for a new name may come before its certificate
	var conn *tls.Conn
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		conn, err = tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", httpsPort), &tls.Config{ServerName: host, RootCAs: roots})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the site's chain does not verify against the local CA: %v", err)
		}
	}
	defer func() { _ = conn.Close() }()
	var hashes []string
	for _, cert := range conn.ConnectionState().VerifiedChains[0] {
		sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
		hashes = append(hashes, base64.StdEncoding.EncodeToString(sum[:]))
	}
	return strings.Join(hashes, ",")
}

// browser starts headless Chromium with the flags this closed network
// needs, a fresh profile, and trust in the given keys only.
func browser(t *testing.T, spki string, extra ...chromedp.ExecAllocatorOption) context.Context {
	t.Helper()
	profile, err := os.MkdirTemp("", "miniapp-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	// removed after Chromium stops (cleanups run last first), and again
	// for a while: its helper processes may still write to the profile
	// for a moment after it exits, which failed t.TempDir's removal
	t.Cleanup(func() {
		for range 50 {
			if os.RemoveAll(profile) == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Logf("the Chromium profile %s could not be removed", profile)
	})
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.UserDataDir(profile),
		chromedp.Flag("ignore-certificate-errors-spki-list", spki),
	)
	opts = append(opts, extra...)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting Chromium: %v", err)
	}
	timed, cancelTimed := context.WithTimeout(ctx, 2*time.Minute)
	t.Cleanup(cancelTimed)
	return timed
}

// axeSource returns axe-core's script, installed from the npm registry
// into the user cache on first use.
func axeSource(t *testing.T) string {
	t.Helper()
	cache, err := os.UserCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(cache, "miniapp-test", "axe-core-"+axeVersion)
	file := filepath.Join(dir, "node_modules", "axe-core", "axe.min.js")
	if _, err := os.Stat(file); err != nil {
		if _, err := exec.LookPath("npm"); err != nil {
			missing(t, "npm (to install axe-core)")
		}
		out, err := exec.Command("npm", "install", "--prefix", dir, "--no-audit", "--no-fund", "--no-save", "axe-core@"+axeVersion).CombinedOutput()
		if err != nil {
			t.Fatalf("npm install axe-core: %v\n%s", err, out)
		}
	}
	src, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return string(src)
}

// checkAccessibility runs axe-core on the current page and fails on any
// serious or critical violation.
func checkAccessibility(t *testing.T, ctx context.Context, axe, name string) {
	t.Helper()
	// DevTools evaluates in the page without its CSP, which forbids every
	// script of the page's own: no reload, so the page stays as it is
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](axe)); err != nil {
		t.Fatalf("%s: loading axe-core: %v", name, err)
	}
	out, err := chromedp.Run(ctx, chromedp.Evaluate[string](
		`axe.run(document).then(r => JSON.stringify(r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.length}))))`,
		chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("%s: axe.run: %v", name, err)
	}
	var violations []struct {
		ID, Impact, Help string
		Nodes            int
	}
	if err := json.Unmarshal([]byte(out), &violations); err != nil {
		t.Fatal(err)
	}
	for _, v := range violations {
		if v.Impact == "serious" || v.Impact == "critical" {
			t.Errorf("%s: %s violation %s (%s) on %d nodes", name, v.Impact, v.ID, v.Help, v.Nodes)
		} else {
			t.Logf("%s: %s violation %s (%s)", name, v.Impact, v.ID, v.Help)
		}
	}
}

// TestBrowserSingleSignOn signs in once for two sites with real cookies
// across hostnames (every *.example.test name is this machine): the first
// app sends Chromium to the login site, whose form's redirect back to the
// app the page's form-action allows; the second app opens without a
// login; the login site's sign-out page ends both.
func TestBrowserSingleSignOn(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: runs Chromium and the built Caddy")
	}
	if _, err := os.Stat(chromiumPath); err != nil {
		missing(t, "Chromium ("+chromiumPath+", Debian package chromium)")
	}
	s := startSSO(t)
	ctx := browser(t, "", chromedp.Flag("host-resolver-rules", "MAP *.example.test 127.0.0.1"))
	run := func(steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatal(err)
		}
	}
	// page waits until the browser shows a page at a location that
	// starts with prefix and whose text starts with text (a navigation in
	// progress may refuse to answer meanwhile), and returns it
	page := func(prefix, text string) (string, string) {
		t.Helper()
		var loc, body string
		var err error
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			if loc, err = chromedp.Run(ctx, chromedp.Location()); err == nil {
				body, err = chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
			}
			body = strings.TrimSpace(body)
			if err == nil && strings.HasPrefix(loc, prefix) && strings.HasPrefix(body, text) {
				return loc, body
			}
			if time.Now().After(deadline) {
				t.Fatalf("the browser shows %s with %q (%v), want %s with %q", loc, body, err, prefix, text)
			}
		}
	}
	app := s.url("app1", "/reports")
	run(chromedp.Navigate(app), chromedp.WaitVisible(chromedp.ID("username")))
	page(s.url("auth", "/login?next="), "Sign in")
	run(chromedp.SendKeys(chromedp.ID("username"), "ada"), chromedp.SendKeys(chromedp.ID("password"), adaPassword),
		chromedp.Click(chromedp.CSS(`button[type="submit"]`)))
	if loc, _ := page(app, "app1 user=ada"); loc != app {
		t.Errorf("after sign-in the browser is at %s, want %s", loc, app)
	}
	run(chromedp.Navigate(s.url("app2", "/")))
	page(s.url("app2", "/"), "app2 user=ada")
	run(chromedp.Navigate(s.url("auth", "/logout?next="+url.QueryEscape(app))), chromedp.WaitVisible(chromedp.CSS(`button[type="submit"]`)),
		chromedp.Click(chromedp.CSS(`button[type="submit"]`)))
	// signed out, the app sends the browser to sign in again
	page(s.url("auth", "/login?next="+url.QueryEscape(app)), "Sign in")
	run(chromedp.Navigate(s.url("app2", "/")), chromedp.WaitVisible(chromedp.ID("username")))
}
