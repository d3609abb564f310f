package miniapp

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The integration tests of the guard features, through the real Caddy
// of caddy_test.go; each uses its own client IP (X-Forwarded-For from a
// trusted proxy) so the throttle counts of one do not touch another.

func TestCaddyThrottle(t *testing.T) {
	storage := t.TempDir()
	s := startCaddy(t, storage, "")
	c := s.client()
	ip := []string{"X-Forwarded-For", "198.51.100.20"}
	for i := 0; i < 3; i++ {
		if resp, _ := call(t, c, "POST", httpsBase+"/login", "username=ada&password=wrong", ip...); resp.StatusCode != 401 {
			t.Fatalf("failure %d: %d", i+1, resp.StatusCode)
		}
	}
	resp, _ := call(t, c, "POST", httpsBase+"/login", "username=ada&password="+adaPassword, ip...)
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("right password while throttled: %d Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if resp, _ := call(t, c, "POST", httpsBase+"/login", "username=ada&password="+adaPassword, "X-Forwarded-For", "198.51.100.21"); resp.StatusCode != 303 {
		t.Errorf("another client throttled: %d", resp.StatusCode)
	}
	// a reload with another config keeps the count
	startCaddy(t, storage, "session_lifetime 2h")
	if resp, _ := call(t, c, "POST", httpsBase+"/login", "username=ada&password="+adaPassword, ip...); resp.StatusCode != 429 {
		t.Errorf("throttle lost on reload: %d", resp.StatusCode)
	}
	advance(t, time.Minute)
	if resp, _ := call(t, c, "POST", httpsBase+"/login", "username=ada&password="+adaPassword, ip...); resp.StatusCode != 303 {
		t.Errorf("after the window: %d", resp.StatusCode)
	}
}

func TestCaddyThrottleFlood(t *testing.T) {
	defer func(n int) { maxThrottleEntries = n }(maxThrottleEntries)
	maxThrottleEntries = 50
	s := startCaddy(t, t.TempDir(), "")
	c := s.client()
	attacker := []string{"X-Forwarded-For", "203.0.113.66"}
	for i := 0; i < 3; i++ {
		call(t, c, "POST", httpBase+"/login", "username=ada&password=wrong", attacker...)
	}
	for i := 0; i < 300; i++ {
		call(t, c, "POST", httpBase+"/login", "username=nobody&password=x", "X-Forwarded-For", fmt.Sprintf("10.9.%d.%d", i/250, i%250))
	}
	seen := 0
	throttlePool.Range(func(_, v any) bool {
		seen++
		if n := v.(*Throttle).size(); n > 50 {
			t.Errorf("throttle holds %d clients, bound is 50", n)
		}
		return true
	})
	if seen == 0 {
		t.Fatal("no throttle in use")
	}
	if resp, _ := call(t, c, "POST", httpBase+"/login", "username=ada&password="+adaPassword, attacker...); resp.StatusCode != 429 {
		t.Errorf("flood freed the throttled client: %d", resp.StatusCode)
	}
}

func TestCaddyProtect(t *testing.T) {
	s := startCaddy(t, t.TempDir(), "")
	c := s.client()
	resp, _ := call(t, c, "GET", httpsBase+"/private/secret.txt", "", "Accept", "text/html")
	if resp.StatusCode != 303 || resp.Header.Get("Location") != "/login?next=%2Fprivate%2Fsecret.txt" {
		t.Fatalf("protected file without session: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp, body := call(t, c, "GET", httpsBase+"/private/secret.txt", ""); resp.StatusCode != 401 || strings.Contains(body, "top secret") {
		t.Fatalf("protected file for curl: %d", resp.StatusCode)
	}
	if resp, _ := call(t, c, "GET", httpsBase+"/PRIVATE/secret.txt", ""); resp.StatusCode == 200 {
		t.Fatal("case trick reached the protected file")
	}
	// follow the browser: the login page, the form's next, back to the file
	loc, _ := url.Parse(resp.Header.Get("Location"))
	next := loc.Query().Get("next")
	_, page := call(t, c, "GET", httpsBase+loc.String(), "", "Accept", "text/html")
	if !strings.Contains(page, `value="/private/secret.txt"`) {
		t.Fatal("login form does not carry next")
	}
	resp, _ = call(t, c, "POST", httpsBase+"/login", "username=ada&password="+adaPassword+"&next="+url.QueryEscape(next))
	if resp.StatusCode != 303 || resp.Header.Get("Location") != "/private/secret.txt" {
		t.Fatalf("login: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp, body := call(t, c, "GET", httpsBase+resp.Header.Get("Location"), ""); resp.StatusCode != 200 || body != "top secret\n" {
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

func TestCaddyIdleAndSignOutEverywhere(t *testing.T) {
	s := startCaddy(t, t.TempDir(), "idle_timeout 10m")
	phone, laptop := s.client(), s.client()
	for _, c := range []*http.Client{phone, laptop} {
		call(t, c, "POST", httpsBase+"/login", "username=ada&password="+adaPassword)
	}
	advance(t, 6*time.Minute)
	resp, _ := call(t, laptop, "GET", httpsBase+"/whoami", "")
	if !strings.Contains(resp.Header.Get("Set-Cookie"), "__Host-miniapp_session=") {
		t.Fatal("active session not renewed past half the idle window")
	}
	advance(t, 6*time.Minute)
	if resp, _ := call(t, phone, "GET", httpsBase+"/profile", ""); resp.StatusCode != 401 {
		t.Errorf("idle session accepted: %d", resp.StatusCode)
	}
	if resp, _ := call(t, laptop, "GET", httpsBase+"/profile", ""); resp.StatusCode != 200 {
		t.Fatalf("renewed session refused: %d", resp.StatusCode)
	}

	call(t, phone, "POST", httpsBase+"/login", "username=ada&password="+adaPassword)
	u, _ := url.Parse(httpsBase)
	cookies := map[string]*http.Cookie{"phone": phone.Jar.Cookies(u)[0], "laptop": laptop.Jar.Cookies(u)[0]}
	for name, ck := range cookies {
		if resp, _ := call(t, s.client(), "GET", httpsBase+"/profile", "", "Cookie", ck.Name+"="+ck.Value); resp.StatusCode != 200 {
			t.Fatalf("%s not signed in before: %d", name, resp.StatusCode)
		}
	}
	resp, _ = call(t, phone, "POST", httpsBase+"/logout", "all=1")
	if resp.StatusCode != 303 {
		t.Fatalf("sign out everywhere: %d", resp.StatusCode)
	}
	for name, ck := range cookies {
		if resp, _ := call(t, s.client(), "GET", httpsBase+"/profile", "", "Cookie", ck.Name+"="+ck.Value); resp.StatusCode != 401 {
			t.Errorf("%s still signed in: %d", name, resp.StatusCode)
		}
	}
}

func TestCaddyMetrics(t *testing.T) {
	s := startCaddy(t, t.TempDir(), "")
	c := s.client()
	series := []string{
		`caddy_miniapp_logins_total{result="success"}`,
		`caddy_miniapp_logins_total{result="failure"}`,
		`caddy_miniapp_logouts_total`,
		`caddy_miniapp_session_rejections_total{reason="malformed"}`,
	}
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
