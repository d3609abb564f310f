package miniapp

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/testredis"
)

// TestClusterOpenIDConnect: two nodes on one store (both backends) are
// one provider: a code issued on A is redeemed on B and refused on A
// after that; a refresh token revoked on A is refused on B, within the
// store's window; both sign with the one key the first start made.
func TestClusterOpenIDConnect(t *testing.T) {
	buildCaddy(t)
	for _, backend := range []string{"redis", "storage"} {
		t.Run(backend, func(t *testing.T) {
			storage, store, window := t.TempDir(), "", 2*time.Second
			if backend == "redis" {
				store, window = "store redis {\n\t\t\taddress "+testredis.Start(t).Addr+"\n\t\t}", 500*time.Millisecond
			}
			nodes := []*node{newNode(t, storage), newNode(t, storage)}
			a, b := nodes[0], nodes[1]
			issuer := a.url("")
			block := fmt.Sprintf(`%s
		oidc {
			issuer %s
			client app {
				secret %s
				redirect_uri http://127.0.0.1:9/cb
			}
		}`, store, issuer, oidcSecret)
			var wg sync.WaitGroup
			for _, n := range nodes {
				if backend == "redis" {
					n.storage = t.TempDir()
				}
				n.store = block
				n.writeConfig("ok")
				wg.Add(1)
				go func() { defer wg.Done(); n.start() }()
			}
			wg.Wait()
			for _, n := range nodes {
				n.ready()
			}
			// nodes that started at once may each have made a first key:
			// the store's record wins on both within revocation_sync
			var keys [2]string
			for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
				for i, n := range nodes {
					_, keys[i] = clusterCall(t, "GET", n.url("/miniapp/oidc/keys"), nil)
				}
				if keys[0] == keys[1] && strings.Contains(keys[0], `"kid"`) || time.Now().After(deadline) {
					break
				}
			}
			if keys[0] != keys[1] || !strings.Contains(keys[0], `"kid"`) {
				t.Fatalf("the nodes' key sets differ: %s\n%s", keys[0], keys[1])
			}

			cookie := loginOn(t, a)
			code := clusterCode(t, a, cookie, "openid offline_access")
			status, body := clusterCall(t, "POST", b.url("/miniapp/oidc/token"), exchangeForm(code))
			var tok struct {
				RefreshToken string `json:"refresh_token"`
				Error        string `json:"error"`
			}
			if json.Unmarshal([]byte(body), &tok) != nil || status != http.StatusOK || tok.RefreshToken == "" {
				t.Fatalf("a code of A redeemed on B: %d %s", status, body)
			}
			time.Sleep(window)
			if status, body := clusterCall(t, "POST", a.url("/miniapp/oidc/token"), exchangeForm(code)); status != http.StatusBadRequest ||
				!strings.Contains(body, "invalid_grant") {
				t.Errorf("the code again, on A: %d %s", status, body)
			}

			if status, body := clusterCall(t, "POST", a.url("/miniapp/oidc/revoke"), url.Values{"token": {tok.RefreshToken},
				"token_type_hint": {"refresh_token"}}); status != http.StatusOK {
				t.Fatalf("revoke on A: %d %s", status, body)
			}
			time.Sleep(window)
			status, body = clusterCall(t, "POST", b.url("/miniapp/oidc/token"), url.Values{"grant_type": {"refresh_token"},
				"refresh_token": {tok.RefreshToken}})
			if status != http.StatusBadRequest || !strings.Contains(body, "invalid_grant") {
				t.Errorf("a refresh token revoked on A, on B: %d %s", status, body)
			}
		})
	}
}

// clusterVerifier is the PKCE verifier of the cluster test's codes.
const clusterVerifier = "cluster-verifier-of-at-least-forty-three-characters"

// clusterCode authorizes the app on the node with the session cookie
// and returns the code.
func clusterCode(t *testing.T, n *node, cookie *http.Cookie, scope string) string {
	t.Helper()
	sum := sha256.Sum256([]byte(clusterVerifier))
	q := url.Values{"client_id": {"app"}, "redirect_uri": {"http://127.0.0.1:9/cb"}, "response_type": {"code"}, "scope": {scope},
		"state": {"s"}, "code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"}}
	target := n.url("/miniapp/oidc/authorize?" + q.Encode())
	for range 3 {
		req, _ := http.NewRequest("GET", target, nil)
		req.AddCookie(cookie)
		req.Header.Set("Accept", "text/html")
		resp, err := clusterClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		loc, err := resp.Location()
		if err != nil {
			t.Fatalf("GET %s: %d", target, resp.StatusCode)
		}
		if loc.Host == "127.0.0.1:9" {
			return loc.Query().Get("code")
		}
		target = loc.String()
	}
	t.Fatal("no code")
	return ""
}

// exchangeForm is the token request of a cluster test's code.
func exchangeForm(code string) url.Values {
	return url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {"http://127.0.0.1:9/cb"},
		"code_verifier": {clusterVerifier}}
}

// clusterCall sends a request as the app (its secret in the header)
// and returns the status and body.
func clusterCall(t *testing.T, method, target string, form url.Values) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, target, strings.NewReader(form.Encode()))
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	req.SetBasicAuth("app", oidcSecret)
	resp, err := clusterClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}
