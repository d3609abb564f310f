package miniapp

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// node is one Caddy process of a cluster test: its site on an HTTP port
// and its admin endpoint, with the storage it shares with the others.
type node struct {
	t         *testing.T
	port      int
	admin     int
	config    string
	home      string
	process   *caddyProcess
	configDir string
	storage   string
}

// nodeConfig is the Caddyfile of a node; body is what its site responds
// besides the module's routes. It serves plain HTTP with no local CA, as
// Caddy's own CA creation races when two instances start at once on an
// empty storage.
func nodeConfig(port, admin int, storage, body string) string {
	return fmt.Sprintf(`{
	admin localhost:%d
	http_port %d
	storage file_system %s
	auto_https off
	servers {
		protocols h1 h2c
	}
}
http://localhost:%d {
	miniapp {
		user ada %s
		revocation_sync 1s
	}
	respond %q
}
`, admin, port, storage, port, adaHash, body)
}

// newNode writes the node's Caddyfile, on free ports; start runs it.
func newNode(t *testing.T, storage string) *node {
	n := &node{t: t, port: freePort(t), admin: freePort(t), home: t.TempDir(), configDir: t.TempDir(), storage: storage}
	n.writeConfig("ok")
	return n
}

func (n *node) writeConfig(body string) {
	n.config = filepath.Join(n.configDir, "Caddyfile")
	if err := os.WriteFile(n.config, []byte(nodeConfig(n.port, n.admin, n.storage, body)), 0o600); err != nil {
		n.t.Fatal(err)
	}
}

func (n *node) start() {
	n.process = runCaddy(n.t, ".", n.home, "--config", n.config, "--adapter", "caddyfile")
}

func (n *node) url(path string) string { return fmt.Sprintf("http://localhost:%d%s", n.port, path) }

func (n *node) ready() {
	waitFor(n.t, &http.Client{Timeout: 2 * time.Second}, n.url("/hello"), n.process)
}

// kill ends the process at once, as a crash would.
func (n *node) kill() {
	_ = n.process.cmd.Process.Signal(syscall.SIGKILL)
	_ = n.process.cmd.Wait()
}

// clusterClient does not follow redirects and keeps no cookies: each test
// sends the cookie it means to. It opens a connection per request and
// tries again when the connection fails: a reload of Caddy resets the
// connections its old server accepted as it stopped, before the request
// reached the module. What the tests check is the module's answer, never
// a transport error.
var clusterClient = &http.Client{
	Timeout:       5 * time.Second,
	Transport:     retrying{&http.Transport{DisableKeepAlives: true}},
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// retrying sends a request again, up to three times in all, when no
// response came back.
type retrying struct{ base http.RoundTripper }

func (rt retrying) RoundTrip(r *http.Request) (*http.Response, error) {
	for attempt := 1; ; attempt++ {
		resp, err := rt.base.RoundTrip(r)
		if err == nil || attempt == 3 || (r.Body != nil && r.GetBody == nil) {
			return resp, err
		}
		time.Sleep(50 * time.Millisecond)
		again := r.Clone(r.Context())
		if r.GetBody != nil {
			if again.Body, err = r.GetBody(); err != nil {
				return nil, err
			}
		}
		r = again
	}
}

// h2cClient speaks HTTP/2 over plain TCP. A reload ends the old server's
// connections with GOAWAY, which tells the client which requests were not
// taken, so none is lost; HTTP/1.1 has no such signal for a request sent
// just as the server closes the connection.
func h2cClient() *http.Client {
	protocols := new(http.Protocols)
	protocols.SetUnencryptedHTTP2(true)
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Protocols: protocols}}
}

// loginOn signs ada in on the node and returns the session cookie.
func loginOn(t *testing.T, n *node) *http.Cookie {
	t.Helper()
	resp, err := clusterClient.PostForm(n.url("/login"), url.Values{"username": {"ada"}, "password": {adaPassword}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 303 || len(resp.Cookies()) != 2 || resp.Cookies()[0].Name != "miniapp_session" {
		t.Fatalf("login on :%d: %d", n.port, resp.StatusCode)
	}
	return resp.Cookies()[0]
}

// profileStatus is the status of GET /profile with the cookie on the node.
func profileStatus(t *testing.T, n *node, c *http.Cookie) int {
	t.Helper()
	req, _ := http.NewRequest("GET", n.url("/profile"), nil)
	req.AddCookie(c)
	resp, err := clusterClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func logoutOn(t *testing.T, n *node, c *http.Cookie) {
	t.Helper()
	req, _ := http.NewRequest("POST", n.url("/logout"), nil)
	req.AddCookie(c)
	resp, err := clusterClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 303 {
		t.Fatalf("logout on :%d: %d", n.port, resp.StatusCode)
	}
}

// TestClusterSharedStorage runs two Caddy processes on one file_system
// storage, started at the same moment on an empty storage.
func TestClusterSharedStorage(t *testing.T) {
	buildCaddy(t)
	storage := t.TempDir()
	a, b := newNode(t, storage), newNode(t, storage)
	var wg sync.WaitGroup
	for _, n := range []*node{a, b} {
		wg.Add(1)
		go func() { defer wg.Done(); n.start() }()
	}
	wg.Wait()
	a.ready()
	b.ready()

	data, err := os.ReadFile(filepath.Join(storage, keysKey(defaultRealm)))
	var stored storedKeys
	if err != nil || json.Unmarshal(data, &stored) != nil || len(stored.Keys) != 1 {
		t.Fatalf("key set after a simultaneous start: %s %v", data, err)
	}

	c := loginOn(t, a)
	if got := profileStatus(t, b, c); got != 200 {
		t.Fatalf("session of A refused on B: %d", got)
	}
	logoutOn(t, b, c)
	deadline := time.Now().Add(3 * time.Second) // revocation_sync 1s, and margin
	for profileStatus(t, a, c) != 401 {
		if time.Now().After(deadline) {
			t.Fatal("logout on B not in force on A within the sync window")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestClusterKillRestart kills a Caddy between login and profile and
// starts it again: sessions stay, and a logout just before the kill stays.
func TestClusterKillRestart(t *testing.T) {
	n := newNode(t, t.TempDir())
	n.start()
	n.ready()
	kept, ended := loginOn(t, n), loginOn(t, n)
	logoutOn(t, n, ended)
	n.kill()
	n.start()
	n.ready()
	if got := profileStatus(t, n, kept); got != 200 {
		t.Errorf("session lost by kill -9: %d", got)
	}
	if got := profileStatus(t, n, ended); got != 401 {
		t.Errorf("logout lost by kill -9: %d", got)
	}
}

// TestClusterReloadUnderLoad reloads Caddy with a changed Caddyfile while
// a loop reads /profile: no request fails and the session stays.
func TestClusterReloadUnderLoad(t *testing.T) {
	n := newNode(t, t.TempDir())
	n.start()
	n.ready()
	c := loginOn(t, n)

	load := startProfileLoad(n, c, 4)
	time.Sleep(500 * time.Millisecond)
	n.reload("reloaded")
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := clusterClient.Get(n.url("/"))
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(body) == "reloaded" {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the new config never answered")
		}
		time.Sleep(50 * time.Millisecond)
	}
	before := load.requests.Load()
	time.Sleep(500 * time.Millisecond)
	load.stop()

	if load.failures.Load() != 0 {
		t.Errorf("%d of %d requests failed during the reload; first: %v", load.failures.Load(), load.requests.Load(), load.firstFailure.Load())
	}
	if load.requests.Load() == before || before == 0 {
		t.Errorf("no requests around the reload: %d before, %d in all", before, load.requests.Load())
	}
	if got := profileStatus(t, n, c); got != 200 {
		t.Errorf("session lost by reload: %d", got)
	}
}

// profileLoad reads /profile with one cookie from several clients at
// once, counting the requests and the failures, until stop.
type profileLoad struct {
	requests, failures atomic.Int64
	firstFailure       atomic.Value
	done               chan struct{}
	wg                 sync.WaitGroup
}

func startProfileLoad(n *node, c *http.Cookie, clients int) *profileLoad {
	l := &profileLoad{done: make(chan struct{})}
	for range clients {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			client := h2cClient()
			for {
				select {
				case <-l.done:
					return
				default:
				}
				req, _ := http.NewRequest("GET", n.url("/profile"), nil)
				req.AddCookie(c)
				resp, err := client.Do(req)
				l.requests.Add(1)
				if err != nil {
					l.fail(err.Error())
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					l.fail(resp.Status)
				}
			}
		}()
	}
	return l
}

func (l *profileLoad) fail(why string) {
	l.failures.Add(1)
	l.firstFailure.CompareAndSwap(nil, why)
}

// stop ends the load and waits for its clients.
func (l *profileLoad) stop() {
	close(l.done)
	l.wg.Wait()
}

// reload rewrites the node's Caddyfile with a new body and applies it
// with `caddy reload`.
func (n *node) reload(body string) {
	n.t.Helper()
	n.writeConfig(body)
	out, err := exec.Command(buildCaddy(n.t), "reload", "--config", n.config, "--adapter", "caddyfile",
		"--address", fmt.Sprintf("localhost:%d", n.admin)).CombinedOutput()
	if err != nil {
		n.t.Fatalf("caddy reload: %v\n%s", err, out)
	}
}
