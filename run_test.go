package miniapp

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/testport"
)

// caddyBinary is cmd/caddy built once per test run, for the tests that
// need a Caddy process of its own.
var caddyBinary struct {
	once sync.Once
	dir  string
	path string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if caddyBinary.dir != "" {
		_ = os.RemoveAll(caddyBinary.dir)
	}
	os.Exit(code)
}

// buildCaddy returns the path of the project's Caddy, built on first use.
func buildCaddy(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: builds and runs the Caddy binary")
	}
	caddyBinary.once.Do(func() {
		caddyBinary.dir, caddyBinary.err = os.MkdirTemp("", "miniapp-caddy-")
		if caddyBinary.err != nil {
			return
		}
		caddyBinary.path = filepath.Join(caddyBinary.dir, "caddy")
		out, err := exec.Command("go", "build", "-o", caddyBinary.path, "./cmd/caddy").CombinedOutput()
		if err != nil {
			caddyBinary.err = &buildError{err, string(out)}
		}
	})
	if caddyBinary.err != nil {
		t.Fatalf("building cmd/caddy: %v", caddyBinary.err)
	}
	return caddyBinary.path
}

type buildError struct {
	err    error
	output string
}

func (e *buildError) Error() string { return e.err.Error() + "\n" + e.output }

// caddyProcess is a Caddy started by a test, with its own home and data
// folders, stopped when the test ends.
type caddyProcess struct {
	cmd  *exec.Cmd
	home string
	out  *output
}

// output is a process's output, which a test may read while the process
// writes it.
type output struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.Write(p)
}

// String is the output so far.
func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// runCaddy starts `caddy run` with the given args in dir, its home (and
// so its storage) in home.
func runCaddy(t *testing.T, dir, home string, args ...string) *caddyProcess {
	t.Helper()
	cmd := exec.Command(buildCaddy(t), append([]string{"run"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+home, "XDG_DATA_HOME="+filepath.Join(home, "data"), "XDG_CONFIG_HOME="+filepath.Join(home, "config"))
	out := new(output)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &caddyProcess{cmd: cmd, home: home, out: out}
	t.Cleanup(p.stop)
	return p
}

// stop ends the process gracefully, or kills it after a few seconds.
func (p *caddyProcess) stop() {
	if p.cmd.ProcessState != nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
	}
}

// waitFor polls url until it answers 200 or the time is up.
func waitFor(t *testing.T, client *http.Client, url string, p *caddyProcess) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := client.Get(url)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready: %v\n%s", url, err, p.out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// exampleOnFreePorts writes the example Caddyfile with free ports for
// its HTTP and HTTPS servers and its admin endpoint, and returns the two
// base URLs and the file.
func exampleOnFreePorts(t *testing.T) (string, string, string) {
	src, err := os.ReadFile("Caddyfile")
	if err != nil {
		t.Fatal(err)
	}
	httpPort, httpsPort, admin := testport.Free(t), testport.Free(t), testport.Free(t)
	config := strings.NewReplacer(
		"\thttp_port 8080\n", fmt.Sprintf("\thttp_port %d\n\tadmin localhost:%d\n", httpPort, admin),
		"\thttps_port 8443\n", fmt.Sprintf("\thttps_port %d\n", httpsPort),
	).Replace(string(src))
	if config == string(src) {
		t.Fatal("the example Caddyfile no longer sets http_port 8080 and https_port 8443")
	}
	file := filepath.Join(t.TempDir(), "Caddyfile")
	if err := os.WriteFile(file, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("http://localhost:%d", httpPort), fmt.Sprintf("https://localhost:%d", httpsPort), file
}

// TestExampleCaddyfile runs what the README's run command runs: the
// project's Caddy with the example Caddyfile, over HTTP and over HTTPS
// with a certificate from Caddy's local CA.
func TestExampleCaddyfile(t *testing.T) {
	home := t.TempDir()
	httpBase, httpsBase, config := exampleOnFreePorts(t)
	p := runCaddy(t, ".", home, "--config", config, "--adapter", "caddyfile")
	plain := &http.Client{Timeout: 5 * time.Second}
	waitFor(t, plain, httpBase+"/hello?name=World", p)
	resp, err := plain.Get(httpBase + "/hello?name=World")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if string(body) != "Hello, World!" {
		t.Errorf("HTTP /hello: %q", body)
	}

	// trust exactly the local CA the example's Caddy made
	rootFile := filepath.Join(home, "data", "caddy", "pki", "authorities", "local", "root.crt")
	var pool *x509.CertPool
	deadline := time.Now().Add(20 * time.Second)
	for pool == nil {
		if pem, err := os.ReadFile(rootFile); err == nil {
			pool = x509.NewCertPool()
			pool.AppendCertsFromPEM(pem)
		} else if time.Now().After(deadline) {
			t.Fatalf("no local CA root: %v\n%s", err, p.out)
		} else {
			time.Sleep(200 * time.Millisecond)
		}
	}
	secure := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	waitFor(t, secure, httpsBase+"/hello", p)
	for path, want := range map[string]string{"/": `href="/login"`, "/login": `name="password"`, "/hello?name=Ada": "Hello, Ada!"} {
		resp, err := secure.Get(httpsBase + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), want) {
			t.Errorf("HTTPS %s: %d, body lacks %q", path, resp.StatusCode, want)
		}
	}
}

// TestCaddyCommands checks that the built Caddy lists the modules and
// has the miniapp command.
func TestCaddyCommands(t *testing.T) {
	out, err := exec.Command(buildCaddy(t), "list-modules").Output()
	for _, module := range []string{"http.handlers.miniapp", "admin.api.miniapp", "http.handlers.miniapp.stores.storage", "http.handlers.miniapp.stores.redis"} {
		if err != nil || !strings.Contains(string(out), module+"\n") {
			t.Errorf("list-modules lacks %s: %v", module, err)
		}
	}
	out, err = exec.Command(buildCaddy(t), "help", "miniapp").Output()
	if err != nil || !strings.Contains(string(out), "caddy miniapp [command]") {
		t.Errorf("caddy help miniapp: %v\n%s", err, out)
	}
}
