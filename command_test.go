package miniapp

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/testport"
)

// TestCommand runs `caddy miniapp` of the built binary against a running
// Caddy: it lists a user's sessions as a table, revokes one, signs a user
// out everywhere, and exits 1 with a one-line reason for a wrong user, a
// malformed ID, an unknown realm or no Caddy at all.
func TestCommand(t *testing.T) {
	n := newNode(t, t.TempDir())
	n.start()
	n.ready()
	base, admin := n.url(""), n.admin
	signIn := func(ua string) *http.Client {
		jar, _ := cookiejar.New(nil)
		c := &http.Client{Jar: jar, Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		if resp, _ := call(t, c, "POST", base+"/login", "username=ada&password="+adaPassword, "User-Agent", ua); resp.StatusCode != 303 {
			t.Fatalf("login: %d", resp.StatusCode)
		}
		return c
	}
	firefox := signIn(firefoxUA)
	time.Sleep(time.Second) // session times are whole seconds: the iPhone's is the newer
	iphone := signIn(iphoneUA)

	dir := ""
	miniapp := func(args ...string) (string, string, int) {
		cmd := exec.Command(buildCaddy(t), append([]string{"miniapp"}, args...)...)
		cmd.Dir = dir
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		var exit *exec.ExitError
		if err != nil && !errors.As(err, &exit) {
			t.Fatal(err)
		}
		return stdout.String(), stderr.String(), cmd.ProcessState.ExitCode()
	}
	address := fmt.Sprintf("localhost:%d", admin)

	out, errOut, code := miniapp("sessions", "ada", "--address", address)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 3 || strings.Join(strings.Fields(lines[0]), " ") != "ID ACCOUNT DEVICE ADDRESS FACTORS STARTED EXPIRES" {
		t.Fatalf("sessions ada: exit %d\n%s%s", code, out, errOut)
	}
	newest := strings.Fields(lines[1])
	if len(newest[0]) != 32 || !strings.Contains(lines[1], "Safari on iPhone") || !strings.Contains(lines[2], "Firefox on Linux") {
		t.Errorf("sessions table, want the iPhone first:\n%s", out)
	}

	// without --address, the admin address of the Caddyfile in the
	// current folder, as caddy reload finds it, and none of Caddy's log
	// lines (an unformatted Caddyfile makes the adapter warn)
	dir = t.TempDir()
	caddyfile := fmt.Sprintf("{\n  admin %s\n}\nlocalhost {\n\trespond ok\n}\n", address)
	if err := os.WriteFile(filepath.Join(dir, "Caddyfile"), []byte(caddyfile), 0o600); err != nil {
		t.Fatal(err)
	}
	if again, errOut, code := miniapp("sessions", "ada"); code != 0 || again != out || errOut != "" {
		t.Errorf("sessions ada with ./Caddyfile: exit %d\n%s\n%s", code, again, errOut)
	}
	dir = ""

	out, errOut, code = miniapp("revoke", newest[0], "--address", address)
	if code != 0 || !strings.Contains(out, "ended session "+newest[0]) {
		t.Errorf("revoke: exit %d %q %q", code, out, errOut)
	}
	if resp, _ := call(t, iphone, "GET", base+"/profile", ""); resp.StatusCode != 401 {
		t.Errorf("the revoked session: %d, want 401", resp.StatusCode)
	}
	if resp, _ := call(t, firefox, "GET", base+"/profile", ""); resp.StatusCode != 200 {
		t.Errorf("the other session after revoke: %d, want 200", resp.StatusCode)
	}
	out, errOut, code = miniapp("signout", "ada", "--address", address)
	if code != 0 || out != "signed ada out everywhere (sessions ended: 1, accounts: 1)\n" {
		t.Errorf("signout: exit %d %q %q", code, out, errOut)
	}
	if resp, _ := call(t, firefox, "GET", base+"/profile", ""); resp.StatusCode != 401 {
		t.Errorf("a session after signout: %d, want 401", resp.StatusCode)
	}

	// a lost phone: the operator removes the factor, which ends the
	// user's sessions, and the password alone signs in again
	phone := signIn(firefoxUA)
	enrolOver(t, phone, base)
	out, errOut, code = miniapp("totp-reset", "ada", "--address", address)
	if code != 0 || out != "removed the second factor of ada; sessions ended: 1\n" {
		t.Errorf("totp-reset: exit %d %q %q", code, out, errOut)
	}
	if resp, _ := call(t, phone, "GET", base+"/profile", ""); resp.StatusCode != 401 {
		t.Errorf("a session after totp-reset: %d, want 401", resp.StatusCode)
	}
	signIn(firefoxUA)

	// passkeys: one registered over plain HTTP on localhost, listed and
	// removed by the operator
	owner := signIn(firefoxUA)
	_, body := call(t, owner, "POST", base+"/profile/passkeys", "action=begin", "Accept", "application/json")
	var options map[string]any
	if err := json.Unmarshal([]byte(body), &options); err != nil {
		t.Fatalf("passkey begin: %v %q", err, body)
	}
	auth := newAuthenticator(t, "localhost")
	finish, _ := json.Marshal(map[string]any{"ceremony": options["ceremony"], "credential": auth.create(options, base), "name": "laptop"})
	if resp, body := call(t, owner, "POST", base+"/profile/passkeys", string(finish), "Content-Type", "application/json", "Accept", "application/json"); resp.StatusCode != 201 {
		t.Fatalf("passkey registration: %d %q", resp.StatusCode, body)
	}
	id := b64url.EncodeToString(auth.id)
	out, errOut, code = miniapp("passkeys", "ada", "--address", address)
	if lines := strings.Split(strings.TrimSpace(out), "\n"); code != 0 || len(lines) != 2 || !strings.HasPrefix(lines[1], id+" ") || !strings.Contains(lines[1], "laptop") {
		t.Errorf("passkeys: exit %d %q %q", code, out, errOut)
	}
	out, errOut, code = miniapp("passkey-delete", id, "--address", address)
	if code != 0 || out != "removed passkey "+id+" (laptop) of ada\n" {
		t.Errorf("passkey-delete: exit %d %q %q", code, out, errOut)
	}
	out, errOut, code = miniapp("passkeys-reset", "ada", "--address", address)
	if code != 0 || out != "ada had no passkeys; sessions ended: 2\n" {
		t.Errorf("passkeys-reset: exit %d %q %q", code, out, errOut)
	}
	if resp, _ := call(t, owner, "GET", base+"/profile", ""); resp.StatusCode != 401 {
		t.Errorf("a session after passkeys-reset: %d, want 401", resp.StatusCode)
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"sessions", "nobody", "--address", address}, "no such user in the realm"},
		{[]string{"signout", "nobody", "--address", address}, "no such user in the realm"},
		{[]string{"totp-reset", "nobody", "--address", address}, "no such user in the realm"},
		{[]string{"passkeys", "nobody", "--address", address}, "no such user in the realm"},
		{[]string{"passkey-delete", "AAAA", "--address", address}, "no such passkey"},
		{[]string{"passkeys-reset", "nobody", "--address", address}, "no such user in the realm"},
		{[]string{"revoke", "zz", "--address", address}, "32 hex digits"},
		{[]string{"revoke", newest[0], "--address", address}, "no such session"},
		{[]string{"sessions", "ada", "--realm", "elsewhere", "--address", address}, "no such realm in the running config"},
		{[]string{"sessions", "ada", "--address", fmt.Sprintf("localhost:%d", testport.Free(t))}, "connection refused"},
		{[]string{"bogus", "--address", address}, `unknown command "bogus"`},
		{nil, "a command is required"},
	} {
		out, errOut, code := miniapp(c.args...)
		if code != 1 || out != "" || !strings.Contains(errOut, c.want) || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want 1 and one line with %q", c.args, code, out, errOut, c.want)
		}
	}
}
