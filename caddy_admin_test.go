package miniapp

import (
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// adminBase is the admin endpoint of the caddytest Caddy.
const adminBase = "http://localhost:2999"

// TestCaddySessions runs the sessions view through a real Caddy: the
// first of two sessions ends the second from the profile page (a
// cross-site POST refused first), then the admin API lists a user's
// sessions, ends one by ID and signs a user out everywhere, and answers
// 404 for an unknown user or realm.
func TestCaddySessions(t *testing.T) {
	s := startCaddy(t, t.TempDir(), "")
	first, _ := s.signIn("ada", adaPassword, firefoxUA)
	time.Sleep(time.Second) // session times are whole seconds: the second is the newer
	second, secondID := s.signIn("ada", adaPassword, iphoneUA)
	if p := s.profile(first); len(p.Sessions) != 2 || p.Sessions[0].ID != secondID || p.Sessions[0].Device != "Safari on iPhone" {
		t.Fatalf("profile of the first session: %+v", p.Sessions)
	}
	body := "session=" + secondID
	if resp, _ := call(t, first, "POST", httpsBase+"/logout", body, "Origin", "https://evil.example"); resp.StatusCode != 403 {
		t.Errorf("cross-site ending: %d, want 403", resp.StatusCode)
	}
	if p := s.profile(second); len(p.Sessions) != 2 {
		t.Fatalf("the second session after a refused ending: %+v", p)
	}
	resp, _ := call(t, first, "POST", httpsBase+"/logout", body, "Origin", httpsBase, "Sec-Fetch-Site", "same-origin")
	if resp.StatusCode != 303 || resp.Header.Get("Location") != "/profile" {
		t.Fatalf("ending the second session from the first's page: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp, _ := call(t, second, "GET", httpsBase+"/profile", ""); resp.StatusCode != 401 {
		t.Errorf("the ended session: %d, want 401", resp.StatusCode)
	}

	// the admin API
	grace, graceID := s.signIn("grace", gracePassword, firefoxUA)
	admin := &http.Client{Timeout: 5 * time.Second}
	resp, listed := call(t, admin, "GET", adminBase+"/miniapp/sessions?user=ada", "")
	var sessions []map[string]any
	if err := json.Unmarshal([]byte(listed), &sessions); err != nil || resp.StatusCode != 200 || len(sessions) != 1 {
		t.Fatalf("GET sessions of ada: %d %s %v", resp.StatusCode, listed, err)
	}
	for _, key := range []string{"id", "device", "address", "started", "expires"} {
		if _, ok := sessions[0][key]; !ok {
			t.Errorf("admin session entry lacks %q: %v", key, sessions[0])
		}
	}
	if _, ok := sessions[0]["current"]; ok || sessions[0]["device"] != "Firefox on Linux" {
		t.Errorf("admin session entry: %v", sessions[0])
	}
	if resp, body := call(t, admin, "DELETE", adminBase+"/miniapp/sessions/"+graceID, ""); resp.StatusCode != 200 || !strings.Contains(body, graceID) {
		t.Errorf("DELETE grace's session: %d %s", resp.StatusCode, body)
	}
	if resp, _ := call(t, grace, "GET", httpsBase+"/profile", ""); resp.StatusCode != 401 {
		t.Errorf("grace's session after DELETE: %d, want 401", resp.StatusCode)
	}
	if resp, body := call(t, admin, "POST", adminBase+"/miniapp/signout?user=ada&realm=miniapp", ""); resp.StatusCode != 200 || body != `{"user":"ada","ended":1,"accounts":1}`+"\n" {
		t.Errorf("POST signout of ada: %d %s", resp.StatusCode, body)
	}
	if resp, _ := call(t, first, "GET", httpsBase+"/profile", ""); resp.StatusCode != 401 {
		t.Errorf("ada's session after signout: %d, want 401", resp.StatusCode)
	}

	for _, c := range []struct {
		method, path string
		status       int
		message      string
	}{
		{"GET", "/miniapp/sessions?user=nobody", 404, "no such user in the realm"},
		{"GET", "/miniapp/sessions?user=ada&realm=elsewhere", 404, "no such realm in the running config"},
		{"POST", "/miniapp/signout?user=nobody", 404, "no such user in the realm"},
		{"DELETE", "/miniapp/sessions/" + graceID, 404, "no such session"},
		{"DELETE", "/miniapp/sessions/zz", 400, "32 hex digits"},
		{"GET", "/miniapp/sessions", 400, "user is required"},
		{"PUT", "/miniapp/sessions?user=ada", 405, "method not allowed"},
	} {
		resp, body := call(t, admin, c.method, adminBase+c.path, "")
		if resp.StatusCode != c.status || !strings.HasPrefix(body, `{"error":`) || !strings.Contains(body, c.message) {
			t.Errorf("%s %s: %d %s, want %d with %q", c.method, c.path, resp.StatusCode, body, c.status, c.message)
		}
	}

	log, err := os.ReadFile(s.debugLog)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"by":"profile page"`, `"by":"admin API"`, `"msg":"signed out everywhere"`} {
		if !strings.Contains(string(log), want) {
			t.Errorf("Caddy's log lacks %s", want)
		}
	}
}
