package miniapp

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/session"
	"github.com/caddy-miniapp/miniapp/internal/testport"
)

// oauth2ProxyVersion is the off-the-shelf relying party the tests run.
const oauth2ProxyVersion = "github.com/oauth2-proxy/oauth2-proxy/v7@v7.15.6"

// oauth2Proxy is the oauth2-proxy binary, installed once per test run
// with go install (the module proxy and the build cache make it quick
// after the first time).
var oauth2Proxy struct {
	once sync.Once
	path string
	err  error
	out  []byte
}

// installOAuth2Proxy returns the path of oauth2-proxy at
// oauth2ProxyVersion: the one MINIAPP_OAUTH2_PROXY names (.ci/run
// installs it there), or one installed now.
func installOAuth2Proxy(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: installs and runs oauth2-proxy")
	}
	if path := os.Getenv("MINIAPP_OAUTH2_PROXY"); path != "" {
		return path
	}
	oauth2Proxy.once.Do(func() {
		dir, err := os.MkdirTemp("", "miniapp-oauth2-proxy-")
		if err != nil {
			oauth2Proxy.err = err
			return
		}
		cmd := exec.Command("go", "install", oauth2ProxyVersion)
		cmd.Env = append(os.Environ(), "GOBIN="+dir, "GOFLAGS=")
		oauth2Proxy.out, oauth2Proxy.err = cmd.CombinedOutput()
		oauth2Proxy.path = filepath.Join(dir, "oauth2-proxy")
	})
	if oauth2Proxy.err != nil {
		t.Fatalf("go install %s: %v\n%s", oauth2ProxyVersion, oauth2Proxy.err, oauth2Proxy.out)
	}
	return oauth2Proxy.path
}

// TestOAuth2Proxy: oauth2-proxy, as an off-the-shelf relying party of
// the realm, lets a signed-in user through to its upstream with
// X-Forwarded-User, X-Forwarded-Email and X-Forwarded-Groups, and keeps
// out a user outside its allowed group.
func TestOAuth2Proxy(t *testing.T) {
	binary := installOAuth2Proxy(t)
	proxyPort := testport.Free(t)
	proxyBase := fmt.Sprintf("http://127.0.0.1:%d", proxyPort)
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = fmt.Fprintf(w, "user=%s email=%s groups=%s", r.Header.Get("X-Forwarded-User"), r.Header.Get("X-Forwarded-Email"),
			r.Header.Get("X-Forwarded-Groups"))
	}))
	t.Cleanup(upstream.Close)
	issuer := httpBase
	startCaddy(t, t.TempDir(), fmt.Sprintf(`user carol %s {
			groups staff
			email carol@example.test
		}
		user dave %s {
			groups visitors
			email dave@example.test
		}
		oidc {
			issuer %s
			client proxy {
				secret %s
				redirect_uri %s/oauth2/callback
			}
		}`, adaHash, adaHash, issuer, oidcSecret, proxyBase))

	cmd := exec.Command(binary, "--provider=oidc", "--oidc-issuer-url="+issuer, "--client-id=proxy", "--client-secret="+oidcSecret,
		"--redirect-url="+proxyBase+"/oauth2/callback", "--http-address=127.0.0.1:"+fmt.Sprint(proxyPort), "--upstream="+upstream.URL+"/",
		"--cookie-secret="+base64.RawURLEncoding.EncodeToString(session.Random(32)), "--cookie-secure=false", "--email-domain=*",
		"--scope=openid profile email groups", "--code-challenge-method=S256", "--skip-provider-button=true",
		"--allowed-group=staff", "--oidc-groups-claim=groups")
	var logs strings.Builder
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("oauth2-proxy:\n%s", logs.String())
		}
	})
	ready := &http.Client{Timeout: time.Second}
	for deadline := time.Now().Add(20 * time.Second); ; {
		resp, err := ready.Get(proxyBase + "/ping")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("oauth2-proxy did not start: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}

	through := func(user string) (int, string) {
		c := (&site{t: t}).client()
		target := proxyBase + "/app"
		for range 12 {
			resp, body := call(t, c, "GET", target, "", "Accept", "text/html")
			loc, err := resp.Location()
			if err != nil {
				return resp.StatusCode, body
			}
			if strings.HasPrefix(loc.String(), issuer+"/login") {
				form := url.Values{"username": {user}, "password": {adaPassword}, "next": {loc.Query().Get("next")}}
				resp, _ = call(t, c, "POST", issuer+"/login", form.Encode(), "Accept", "text/html", "Origin", issuer)
				if loc, err = resp.Location(); err != nil {
					t.Fatalf("login as %s: %d", user, resp.StatusCode)
				}
			}
			target = loc.String()
		}
		t.Fatalf("no end to the redirects for %s", user)
		return 0, ""
	}
	// X-Forwarded-User is the claim oauth2-proxy takes as the user ID,
	// which this test leaves at its default
	status, body := through("carol")
	user, rest, _ := strings.Cut(strings.TrimPrefix(body, "user="), " ")
	if status != http.StatusOK || user == "" || rest != "email=carol@example.test groups=staff" {
		t.Errorf("carol through oauth2-proxy: %d %q", status, body)
	}
	if status, body := through("dave"); status != http.StatusForbidden || strings.Contains(body, "user=") {
		t.Errorf("dave, outside the allowed group, through oauth2-proxy: %d", status)
	}
}
