package miniapp

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/session"
	"github.com/caddy-miniapp/miniapp/internal/testhash"
	"github.com/caddy-miniapp/miniapp/internal/testport"
	"github.com/caddyserver/caddy/v2/caddytest"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
)

func TestCaddyProtect(t *testing.T) {
	s := startCaddy(t, t.TempDir(), "")
	c := s.client()
	if resp, body := call(t, c, "GET", httpsBase+"/private/secret.txt", ""); resp.StatusCode != 401 || strings.Contains(body, "top secret") {
		t.Fatalf("protected file for curl: %d", resp.StatusCode)
	}
	if resp, body := call(t, c, "GET", httpsBase+"/PRIVATE/secret.txt", ""); resp.StatusCode == 200 || strings.Contains(body, "top secret") {
		t.Fatal("case trick reached the protected file")
	}
	if resp, _ := call(t, c, "POST", httpsBase+"/login", "username=ada&password="+adaPassword); resp.StatusCode != 303 {
		t.Fatalf("login: %d", resp.StatusCode)
	}
	if resp, body := call(t, c, "GET", httpsBase+"/private/secret.txt", ""); resp.StatusCode != 200 || body != "top secret\n" {
		t.Errorf("protected file with session: %d %q", resp.StatusCode, body)
	}
}

func TestCaddyPlaceholder(t *testing.T) {
	s := startCaddy(t, t.TempDir(), "")
	c := s.client()
	if _, body := call(t, c, "GET", httpsBase+"/whoami", ""); body != "user=" {
		t.Errorf("signed out: %q", body)
	}
	call(t, c, "POST", httpsBase+"/login", "username=grace&password="+gracePassword)
	if _, body := call(t, c, "GET", httpsBase+"/whoami", ""); body != "user=grace" {
		t.Errorf("signed in: %q", body)
	}
}

func TestCaddyMetrics(t *testing.T) {
	s := startCaddy(t, t.TempDir(), "")
	c := s.client()
	series := []string{
		`caddy_miniapp_logins_total{realm="miniapp",result="success"}`,
		`caddy_miniapp_logins_total{realm="miniapp",result="failure"}`,
		`caddy_miniapp_logouts_total{realm="miniapp"}`,
		`caddy_miniapp_session_rejections_total{realm="miniapp",reason="malformed"}`,
		`caddy_miniapp_second_factor_total{realm="miniapp",reason="store",result="failure"}`,
	}
	// every series is there from the start, before its first event
	_, body := call(t, c, "GET", "http://localhost:2999/metrics", "")
	for _, name := range series {
		if !strings.Contains(body, "\n"+name+" ") {
			t.Errorf("%s is not exposed before its first event", name)
		}
	}
	// what `promtool check metrics` checks, with its own linter: the
	// module's series are clean (Caddy's own are not ours)
	problems, err := promlint.New(strings.NewReader(body)).Lint()
	if err != nil {
		t.Fatalf("the metrics endpoint's text does not parse: %v", err)
	}
	for _, p := range problems {
		if strings.HasPrefix(p.Metric, "caddy_miniapp_") {
			t.Errorf("promlint: %s: %s", p.Metric, p.Text)
		}
	}
	series = series[:4]
	before := scrape(t, c, series)
	call(t, c, "POST", httpsBase+"/login", "username=ada&password="+adaPassword, "X-Forwarded-For", "198.51.100.40")
	call(t, c, "POST", httpsBase+"/login", "username=ada&password=wrong", "X-Forwarded-For", "198.51.100.40")
	call(t, c, "POST", httpsBase+"/logout", "")
	call(t, c, "GET", httpsBase+"/profile", "", "Cookie", "__Host-miniapp_session=garbage")
	after := scrape(t, c, series)
	for _, name := range series {
		if after[name]-before[name] != 1 {
			t.Errorf("%s went from %v to %v, want +1", name, before[name], after[name])
		}
	}
}

// scrape reads the value of each series from Caddy's metrics endpoint;
// a series not shown counts as 0.
func scrape(t *testing.T, c *http.Client, series []string) map[string]float64 {
	t.Helper()
	_, body := call(t, c, "GET", "http://localhost:2999/metrics", "")
	values := map[string]float64{}
	for _, line := range strings.Split(body, "\n") {
		for _, name := range series {
			if v, ok := strings.CutPrefix(line, name+" "); ok {
				f, err := strconv.ParseFloat(v, 64)
				if err != nil {
					t.Fatalf("%s: %v", line, err)
				}
				values[name] = f
			}
		}
	}
	return values
}

// TestCaddySitesApart runs two sites, each with its own miniapp block
// and its own user ada, and a catch-all site with a third: a session of
// one is no session on another (by port or by a forged Host), and ada's
// sign out everywhere on one leaves the others' ada signed in. A site
// with the first one's account in another realm refuses its sessions;
// one with the same account and realm shares them.
func TestCaddySitesApart(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: runs a real Caddy")
	}
	one, two, catchAll, staff, mirror := testport.Free(t), testport.Free(t), testport.Free(t), testport.Free(t), testport.Free(t)
	config := fmt.Sprintf(`{
	admin localhost:2999
	http_port %d
	https_port %d
	skip_install_trust
	storage file_system %s
}
http://127.0.0.1:%d {
	miniapp {
		user ada %s
	}
	respond "one {http.miniapp.user}"
}
http://127.0.0.1:%d {
	miniapp {
		user ada %s
		realm two
	}
	respond "two {http.miniapp.user}"
}
http://:%d {
	miniapp {
		user ada %s
		realm any
	}
	respond "any {http.miniapp.user}"
}
http://127.0.0.1:%d {
	miniapp {
		user ada %s
		realm staff
	}
	respond "staff {http.miniapp.user}"
}
http://127.0.0.1:%d {
	miniapp {
		user ada %s
	}
	respond "mirror {http.miniapp.user}"
}
`, httpPort, httpsPort, t.TempDir(), one, adaHash, two, testhash.Bcrypt(adaPassword), catchAll, testhash.Bcrypt(adaPassword), staff, adaHash, mirror, adaHash)
	caddytest.NewTester(t).InitServer(config, "caddyfile")
	c := (&site{t: t}).client()
	base := func(port int) string { return fmt.Sprintf("http://127.0.0.1:%d", port) }
	cookies := map[int]string{}
	for _, port := range []int{one, two, catchAll} {
		resp, _ := call(t, c, "POST", base(port)+"/login", "username=ada&password="+adaPassword)
		if resp.StatusCode != 303 || len(resp.Cookies()) != 2 || resp.Cookies()[0].Name != "miniapp_session" {
			t.Fatalf("login on %d: %d", port, resp.StatusCode)
		}
		cookies[port] = "miniapp_session=" + resp.Cookies()[0].Value
	}
	for _, port := range []int{two, catchAll} {
		if _, body := call(t, c, "GET", base(port)+"/whoami", "", "Cookie", cookies[one]); body != fmt.Sprintf("%s ", map[int]string{two: "two", catchAll: "any"}[port]) {
			t.Errorf("site one's cookie on %d: %q", port, body)
		}
	}
	if _, body := call(t, c, "GET", base(catchAll)+"/", "", "Cookie", cookies[one], "Host", "127.0.0.1"); body != "any " {
		t.Errorf("site one's cookie on the catch-all with site one's host: %q", body)
	}
	// site one's account, as configured on a site of another realm and on
	// one of the same realm: only the second shares its sessions
	if _, body := call(t, c, "GET", base(staff)+"/", "", "Cookie", cookies[one]); body != "staff " {
		t.Errorf("site one's cookie on a site of another realm with the same account: %q", body)
	}
	if _, body := call(t, c, "GET", base(mirror)+"/", "", "Cookie", cookies[one]); body != "mirror ada" {
		t.Errorf("site one's cookie on a site of the same realm and account: %q", body)
	}
	if resp, _ := call(t, c, "POST", base(one)+"/logout", "all=1", "Cookie", cookies[one]); resp.StatusCode != 303 {
		t.Fatalf("sign out everywhere on one: %d", resp.StatusCode)
	}
	for port, want := range map[int]string{one: "one ", two: "two ada", catchAll: "any ada"} {
		if _, body := call(t, c, "GET", base(port)+"/", "", "Cookie", cookies[port]); body != want {
			t.Errorf("after ada signed out everywhere on one, site %d: %q, want %q", port, body, want)
		}
	}
}

// TestCaddySecretsFromEnv configures the key and a password hash as
// {env.*}: the key seals the cookies, and neither it, the hash nor the
// password reaches a log at debug level or the admin API's config.
func TestCaddySecretsFromEnv(t *testing.T) {
	key := base64.RawURLEncoding.EncodeToString(session.Random(32))
	t.Setenv("MINIAPP_TEST_KEY", key)
	hash := testhash.Bcrypt("a password of hopper's")
	t.Setenv("MINIAPP_TEST_HASH", hash)
	s := startCaddy(t, t.TempDir(), "secret_key {env.MINIAPP_TEST_KEY}\n\t\tuser hopper {env.MINIAPP_TEST_HASH}")
	c := s.client()
	if resp, _ := call(t, s.client(), "POST", httpsBase+"/login", "username=hopper&password=wrong"); resp.StatusCode != 401 {
		t.Fatalf("wrong password of a user whose hash comes from the environment: %d", resp.StatusCode)
	}
	resp, _ := call(t, c, "POST", httpsBase+"/login", "username=ada&password="+adaPassword)
	if resp.StatusCode != 303 {
		t.Fatalf("login: %d", resp.StatusCode)
	}
	kr, err := session.ParseKeys([]string{key}, defaultRealm, func(v string) string { return v })
	if err != nil {
		t.Fatal(err)
	}
	var sealed string
	for _, ck := range resp.Cookies() {
		if ck.Name == "__Host-miniapp_session" {
			sealed = ck.Value
		}
	}
	if _, err := kr.Open(session.PurposeSession, sealed, "__Host-miniapp_session", "localhost"); err != nil {
		t.Fatalf("the session cookie is not sealed with the key from the environment: %v", err)
	}
	_, config := call(t, c, "GET", "http://localhost:2999/config/", "")
	if !strings.Contains(config, "{env.MINIAPP_TEST_KEY}") || strings.Contains(config, key) || strings.Contains(config, hash) {
		t.Errorf("the admin API's config does not show the placeholder in place of the key")
	}
	for _, file := range []string{s.logFile, s.debugLog} {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if len(data) == 0 {
			t.Fatalf("%s is empty", file)
		}
		for name, secret := range map[string]string{"key": key, "password": adaPassword, "cookie": sealed, "password hash": hash} {
			if strings.Contains(string(data), secret) {
				t.Errorf("%s holds the %s", file, name)
			}
		}
	}
}

// plainSite loads a Caddy with one plain-HTTP site on port: the miniapp
// block given, protecting /private/*, then the signed-in user. Requests
// from loopback are trusted proxies when trusted is set.
func plainSite(t *testing.T, storage string, port int, trusted bool, block string) string {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: runs a real Caddy")
	}
	proxies := ""
	if trusted {
		proxies = "trusted_proxies static 127.0.0.1/8\n\t\ttrusted_proxies_strict\n\t\tclient_ip_headers X-Forwarded-For"
	}
	caddytest.NewTester(t).InitServer(fmt.Sprintf(`{
	admin localhost:2999
	http_port %d
	https_port %d
	skip_install_trust
	storage file_system %s
	servers {
		%s
	}
}
http://127.0.0.1:%d {
	miniapp {
		protect /private/*
		%s
	}
	respond "user={http.miniapp.user}"
}
`, httpPort, httpsPort, storage, proxies, port, block), "caddyfile")
	return fmt.Sprintf("http://127.0.0.1:%d", port)
}

// TestCaddyConfigChanges reloads Caddy with changed accounts and limits:
// a changed password hash ends that user's sessions and no other's, a
// lowered idle_timeout or session_lifetime ends sessions issued before
// it, and a 200-byte user's sign out everywhere is read back from
// storage.
func TestCaddyConfigChanges(t *testing.T) {
	storage, port := t.TempDir(), testport.Free(t)
	long := strings.Repeat("é", 100)
	users := func(adaHash string) string {
		return fmt.Sprintf("user ada %s\n\t\tuser grace %s\n\t\tuser %s %s", adaHash, graceHash, long, graceHash)
	}
	base := plainSite(t, storage, port, false, users(adaHash))
	c := (&site{t: t}).client()
	cookies := map[string]string{}
	for user, password := range map[string]string{"ada": adaPassword, "grace": gracePassword, long: gracePassword} {
		resp, _ := call(t, c, "POST", base+"/login", "username="+url.QueryEscape(user)+"&password="+password)
		if resp.StatusCode != 303 {
			t.Fatalf("login %.10s: %d", user, resp.StatusCode)
		}
		cookies[user] = "miniapp_session=" + resp.Cookies()[0].Value
	}
	whoami := func(user string) string {
		_, body := call(t, c, "GET", base+"/", "", "Cookie", cookies[user])
		return body
	}
	if resp, _ := call(t, c, "POST", base+"/logout", "all=1", "Cookie", cookies[long]); resp.StatusCode != 303 {
		t.Fatalf("sign out everywhere: %d", resp.StatusCode)
	}

	// a changed revocation_sync starts a new revocation list from storage
	plainSite(t, storage, port, false, users(testhash.Bcrypt(adaPassword))+"\n\t\trevocation_sync 3s")
	if got := whoami("ada"); got != "user=" {
		t.Errorf("ada's session after her password hash changed: %q", got)
	}
	if got := whoami("grace"); got != "user=grace" {
		t.Errorf("grace's session after ada's hash changed: %q", got)
	}
	if got := whoami(long); got != "user=" {
		t.Errorf("a 200-byte user's sign out everywhere did not outlive the reload: %q", got)
	}

	// the cookie keeps whole seconds: past the idle window by more than one
	time.Sleep(3100 * time.Millisecond)
	plainSite(t, storage, port, false, users(adaHash)+"\n\t\tidle_timeout 2s")
	if got := whoami("grace"); got != "user=" {
		t.Errorf("a session unused for longer than the lowered idle_timeout: %q", got)
	}
	plainSite(t, storage, port, false, users(adaHash)+"\n\t\tsession_lifetime 1s")
	if got := whoami("grace"); got != "user=" {
		t.Errorf("a session older than the lowered session_lifetime: %q", got)
	}
}

// TestCaddyProxyAndNext: behind a trusted proxy that terminated HTTPS,
// the cookie is __Host- and Secure; from an untrusted client the header
// is ignored. A next with dot segments comes back resolved, and a
// renewed cookie on protected content comes with no-store.
func TestCaddyProxyAndNext(t *testing.T) {
	port := testport.Free(t)
	for _, trusted := range []bool{true, false} {
		base := plainSite(t, t.TempDir(), port, trusted, "user ada "+adaHash+"\n\t\tidle_timeout 4s")
		c := (&site{t: t}).client()
		resp, _ := call(t, c, "POST", base+"/login?next=%2F..%2F%2Fevil.example%2Fx", "username=ada&password="+adaPassword, "X-Forwarded-Proto", "https")
		if resp.StatusCode != 303 || resp.Header.Get("Location") != "/evil.example/x" {
			t.Errorf("next with dot segments: %d %q", resp.StatusCode, resp.Header.Get("Location"))
		}
		ck := resp.Cookies()[0]
		if secure := ck.Name == "__Host-miniapp_session" && ck.Secure; secure != trusted {
			t.Errorf("trusted proxy %v: cookie %s Secure %v", trusted, ck.Name, ck.Secure)
		}
		if !trusted {
			// past half of idle_timeout, whatever the fraction of a second
			// the session's whole-second time of last use dropped
			time.Sleep(2100 * time.Millisecond)
			resp, _ := call(t, c, "GET", base+"/private/x", "", "Cookie", ck.Name+"="+ck.Value)
			if len(resp.Cookies()) != 1 || resp.Header.Get("Cache-Control") != "no-store" {
				t.Errorf("renewed cookie on protected content: Cache-Control %q", resp.Header.Get("Cache-Control"))
			}
		}
	}
}
