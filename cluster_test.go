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
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/session"
	"github.com/caddy-miniapp/miniapp/internal/testport"
	"github.com/caddy-miniapp/miniapp/internal/testredis"
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
	// store is the miniapp block's store subdirective; empty for the
	// default, the shared file_system storage
	store string
}

// nodeConfig is the Caddyfile of a node; body is what its site responds
// besides the module's routes. It serves plain HTTP with no local CA, as
// Caddy's own CA creation races when two instances start at once on an
// empty storage.
func nodeConfig(port, admin int, storage, store, body string) string {
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
		%s
	}
	respond %q
}
`, admin, port, storage, port, adaHash, store, body)
}

// newNode writes the node's Caddyfile, on free ports; start runs it.
func newNode(t *testing.T, storage string) *node {
	n := &node{t: t, port: testport.Free(t), admin: testport.Free(t), home: t.TempDir(), configDir: t.TempDir(), storage: storage}
	n.writeConfig("ok")
	return n
}

func (n *node) writeConfig(body string) {
	n.config = filepath.Join(n.configDir, "Caddyfile")
	if err := os.WriteFile(n.config, []byte(nodeConfig(n.port, n.admin, n.storage, n.store, body)), 0o600); err != nil {
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
	_ = resp.Body.Close()
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
	_ = resp.Body.Close()
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
	_ = resp.Body.Close()
	if resp.StatusCode != 303 {
		t.Fatalf("logout on :%d: %d", n.port, resp.StatusCode)
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
			_ = resp.Body.Close()
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
				_ = resp.Body.Close()
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

// TestClusterThreeNodes runs three Caddy processes on one store, Redis
// or a shared file_system storage: a login on one is a session on the
// others, a logout or a sign out everywhere on one is refused by the
// others within the store's window (measured over many logouts), a node
// killed with kill -9 keeps every logout when it starts again, and (on
// Redis) an outage of the store signs nobody out and loses no logout.
func TestClusterThreeNodes(t *testing.T) {
	buildCaddy(t)
	for _, backend := range []string{"redis", "storage"} {
		t.Run(backend, func(t *testing.T) {
			var redisServer *testredis.Server
			storage, store, window, rounds := t.TempDir(), "", 2*time.Second, 10
			if backend == "redis" {
				redisServer = testredis.Start(t)
				store, window, rounds = "store redis {\n\t\t\taddress "+redisServer.Addr+"\n\t\t}", 500*time.Millisecond, 100
			}
			nodes := make([]*node, 3)
			var wg sync.WaitGroup
			for i := range nodes {
				dir := storage
				if backend == "redis" {
					dir = t.TempDir() // nothing shared through Caddy's storage
				}
				nodes[i] = newNode(t, dir)
				nodes[i].store = store
				nodes[i].writeConfig("ok")
				wg.Add(1)
				go func() { defer wg.Done(); nodes[i].start() }()
			}
			wg.Wait()
			for _, n := range nodes {
				n.ready()
			}
			a, b, c := nodes[0], nodes[1], nodes[2]
			if redisServer == nil {
				// three nodes started at once on an empty storage made one key set
				data, err := os.ReadFile(filepath.Join(storage, "miniapp", "miniapp", "keys.json"))
				var stored session.KeySet
				if err != nil || json.Unmarshal(data, &stored) != nil || len(stored.Keys) != 1 {
					t.Fatalf("key set after a simultaneous start: %s %v", data, err)
				}
			}

			cookie := loginOn(t, a)
			for _, n := range []*node{b, c} {
				if got := profileStatus(t, n, cookie); got != 200 {
					t.Fatalf("session of A refused on :%d: %d", n.port, got)
				}
			}
			var latencies []time.Duration
			for range rounds {
				cookie := loginOn(t, a)
				logoutOn(t, b, cookie)
				// one stall of a loaded machine (a disk flush, the scheduler)
				// may take a single logout past the window, not past twice it
				latencies = append(latencies, refusedWithin(t, 2*window, cookie, a, c))
			}
			slices.Sort(latencies)
			p99 := latencies[(len(latencies)*99+99)/100-1] // nearest rank
			t.Logf("%s: a logout on B refused on A and C after p50 %v, p99 %v, max %v over %d logouts",
				backend, latencies[len(latencies)/2], p99, latencies[len(latencies)-1], len(latencies))
			if p99 > window {
				t.Errorf("p99 %v of a logout's way to the other nodes, want at most %v", p99, window)
			}

			phone, laptop := loginOn(t, a), loginOn(t, c)
			req, _ := http.NewRequest("POST", b.url("/logout"), strings.NewReader("all=1"))
			req.Header.Set("Content-Type", form)
			req.AddCookie(loginOn(t, b))
			if resp, err := clusterClient.Do(req); err != nil || resp.StatusCode != 303 {
				t.Fatalf("sign out everywhere on B: %v", err)
			}
			refusedWithin(t, window, phone, a, c)
			refusedWithin(t, window, laptop, a, c)

			// a session of A ended by ID through B's admin API, once B
			// has read the login, is refused on A and C within the window
			viaAdmin := loginOn(t, a)
			endOn(t, b, window, currentSessionID(t, a, viaAdmin))
			refusedWithin(t, window, viaAdmin, a, c)

			kept, ended, endedHere := loginOn(t, b), loginOn(t, b), loginOn(t, b)
			logoutOn(t, a, ended)
			refusedWithin(t, window, ended, b)
			logoutOn(t, b, endedHere) // written before B answers
			b.kill()
			b.start()
			b.ready()
			if got := profileStatus(t, b, kept); got != 200 {
				t.Errorf("session lost by kill -9 of B: %d", got)
			}
			for name, c := range map[string]*http.Cookie{"made on A": ended, "made on B": endedHere} {
				if got := profileStatus(t, b, c); got != 401 {
					t.Errorf("logout %s lost by kill -9 of B: %d", name, got)
				}
			}

			if redisServer == nil {
				return
			}
			for _, n := range nodes {
				if _, err := os.Stat(filepath.Join(n.storage, "miniapp")); err == nil {
					t.Errorf("node :%d wrote the module's state to Caddy's storage with store redis", n.port)
				}
			}
			during := loginOn(t, a)
			redisServer.Stop()
			for _, n := range nodes {
				if got := profileStatus(t, n, kept); got != 200 {
					t.Errorf("profile on :%d while Redis is down: %d", n.port, got)
				}
				loginOn(t, n)
			}
			logoutOn(t, a, during)
			if got := profileStatus(t, a, during); got != 401 {
				t.Errorf("logout while Redis is down not in force on its node: %d", got)
			}
			redisServer.Start()
			// the node retries its write after a second, and the others
			// read it as it comes
			refusedWithin(t, window+3*time.Second, during, b, c)
		})
	}
}

// refusedWithin waits until every node refuses the cookie, polling, and
// fails the test when that takes longer than window; it returns how long
// it took.
func refusedWithin(t *testing.T, window time.Duration, cookie *http.Cookie, nodes ...*node) time.Duration {
	t.Helper()
	start := time.Now()
	for _, n := range nodes {
		for profileStatus(t, n, cookie) != 401 {
			if time.Since(start) > window {
				t.Fatalf("logout not refused on :%d within %v", n.port, window)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	return time.Since(start)
}

// currentSessionID is the ID of the cookie's session, from the node's
// profile.
func currentSessionID(t *testing.T, n *node, c *http.Cookie) string {
	t.Helper()
	req, _ := http.NewRequest("GET", n.url("/profile"), nil)
	req.Header.Set("Accept", "application/json")
	req.AddCookie(c)
	resp, err := clusterClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	var p profileJSON
	if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
		t.Fatal(err)
	}
	for _, s := range p.Sessions {
		if s.Current {
			return s.ID
		}
	}
	t.Fatalf("no current session on :%d: %+v", n.port, p)
	return ""
}

// endOn ends the session through the node's admin API, trying again
// while the node has not yet read the login (404), for up to window.
func endOn(t *testing.T, n *node, window time.Duration, id string) {
	t.Helper()
	start := time.Now()
	for {
		req, _ := http.NewRequest("DELETE", fmt.Sprintf("http://localhost:%d/miniapp/sessions/%s", n.admin, id), nil)
		resp, err := clusterClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode == 200 {
			return
		}
		if resp.StatusCode != 404 || time.Since(start) > window {
			t.Fatalf("DELETE session on :%d: %d after %v", n.port, resp.StatusCode, time.Since(start))
		}
		time.Sleep(5 * time.Millisecond)
	}
}
