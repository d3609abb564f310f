package miniapp

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// redisServer is a redis-server of a test, on a free loopback port with a
// folder of its own, appending every write to disk so a restart keeps
// them.
type redisServer struct {
	t    testing.TB
	addr string
	dir  string
	cmd  *exec.Cmd
}

// startRedis starts a redis-server for the test and stops it by PID at
// the end. Without redis-server it skips, except in CI.
func startRedis(t testing.TB) *redisServer {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: runs redis-server")
	}
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("redis-server is missing in CI; .ci/run installs it")
		}
		t.Skip("redis-server is missing: install it as .ci/run does (apt-get install redis-server)")
	}
	r := &redisServer{t: t, addr: fmt.Sprintf("127.0.0.1:%d", freePort(t)), dir: t.TempDir()}
	r.start()
	t.Cleanup(r.stop)
	return r
}

// start runs redis-server and waits until it answers.
func (r *redisServer) start() {
	r.t.Helper()
	_, port, _ := net.SplitHostPort(r.addr)
	r.cmd = exec.Command("redis-server", "--port", port, "--bind", "127.0.0.1", "--dir", r.dir,
		"--save", "", "--appendonly", "yes", "--appendfsync", "always", "--protected-mode", "yes")
	r.cmd.Stdout, r.cmd.Stderr = nil, nil
	if err := r.cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	client := redis.NewClient(&redis.Options{Addr: r.addr})
	defer client.Close()
	deadline := time.Now().Add(10 * time.Second)
	for client.Ping(context.Background()).Err() != nil {
		if time.Now().After(deadline) {
			r.t.Fatalf("redis-server on %s did not start", r.addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop kills redis-server by its PID, as a crash would.
func (r *redisServer) stop() {
	if r.cmd != nil && r.cmd.Process != nil {
		_ = r.cmd.Process.Kill()
		_ = r.cmd.Wait()
		r.cmd = nil
	}
}

// openRedisBackend opens the default realm in the test's Redis.
func openRedisBackend(t testing.TB, addr string, clk *clock) *redisBackend {
	t.Helper()
	st := &RedisStore{Address: []string{addr}}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := st.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	b, err := st.open(ctx, storeOptions{realm: defaultRealm, every: time.Second, remember: 12 * time.Hour, clock: clk, logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.close() })
	return b.(*redisBackend)
}

// TestRedisKeys: revocations are keys that Redis expires itself, and the
// stream of changes is trimmed to a session lifetime.
func TestRedisKeys(t *testing.T) {
	r := startRedis(t)
	clk := new(clock)
	b := openRedisBackend(t, r.addr, clk)
	ctx := context.Background()
	id := [16]byte(randomBytes(16))
	if err := b.revoke(ctx, id, clk.now().Add(90*time.Second)); err != nil {
		t.Fatal(err)
	}
	ttl, err := b.client.TTL(ctx, fmt.Sprintf("miniapp:{miniapp}:revoked:%x", id)).Result()
	if err != nil || ttl <= 80*time.Second || ttl > 90*time.Second {
		t.Errorf("revocation key TTL %v, %v; want about 90s", ttl, err)
	}
	if err := b.revoke(ctx, [16]byte(randomBytes(16)), clk.now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	if n, _ := b.client.XLen(ctx, b.stream).Result(); n != 1 {
		t.Errorf("stream holds %d entries; an expired session's revocation needs none", n)
	}
}

// TestRedisLostData: when Redis loses its data and starts its stream
// again, a node still reads the new entries.
func TestRedisLostData(t *testing.T) {
	r := startRedis(t)
	clk := new(clock)
	writer, reader := openRedisBackend(t, r.addr, clk), openRedisBackend(t, r.addr, clk)
	ctx := context.Background()
	for range 3 {
		_ = writer.revoke(ctx, [16]byte(randomBytes(16)), clk.now().Add(time.Hour))
	}
	if changes, err := reader.changes(ctx); err != nil || len(changes) != 3 {
		t.Fatalf("first read: %d %v", len(changes), err)
	}
	r.stop()
	if err := os.RemoveAll(filepath.Join(r.dir, "appendonlydir")); err != nil {
		t.Fatal(err)
	}
	r.start()
	id := [16]byte(randomBytes(16))
	if err := writer.revoke(ctx, id, clk.now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	var changes []change
	for range 3 { // a read may fail once on a connection of the old server
		more, err := reader.changes(ctx)
		changes = append(changes, more...)
		if err == nil && len(changes) > 0 {
			break
		}
	}
	if len(changes) != 1 || changes[0].id != id {
		t.Errorf("after Redis lost its data: %+v; want the new revocation", changes)
	}
}

// TestRedisDown: while Redis is down nobody is signed out, logins and
// logouts work, a reload keeps the logout made meanwhile, and it reaches
// Redis once Redis is back.
func TestRedisDown(t *testing.T) {
	r := startRedis(t)
	withRedis := func(h *Handler) {
		st := &RedisStore{Address: []string{r.addr}}
		if err := st.Provision(caddy.Context{}); err != nil {
			t.Fatal(err)
		}
		h.store = st
	}
	a := newApp(t, "", withRedis)
	before := a.login("ada", adaPassword, false)

	r.stop()
	if w := a.do(request{target: "/profile", cookie: before}); w.Code != 200 {
		t.Fatalf("profile while Redis is down: %d", w.Code)
	}
	during := a.login("grace", gracePassword, false)
	if w := a.do(request{method: "POST", target: "/logout", cookie: before}); w.Code != 303 {
		t.Fatalf("logout while Redis is down: %d", w.Code)
	}
	if w := a.do(request{target: "/profile", cookie: before}); w.Code != 401 {
		t.Fatalf("logout not in force while Redis is down: %d", w.Code)
	}

	reloaded := newApp(t, "", withRedis)
	if w := reloaded.do(request{target: "/profile", cookie: during}); w.Code != 200 {
		t.Errorf("session lost by a reload while Redis is down: %d", w.Code)
	}
	if w := reloaded.do(request{target: "/profile", cookie: before}); w.Code != 401 {
		t.Errorf("logout lost by a reload while Redis is down: %d", w.Code)
	}

	r.start()
	if err := a.h.revoked.sync(context.Background()); err != nil {
		// the first command may meet a connection to the old server
		if err = a.h.revoked.sync(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	s, _ := a.open(before.Value)
	changes, err := openRedisBackend(t, r.addr, a.h.clock).changes(context.Background())
	if changes = revokedOnly(changes); err != nil || len(changes) != 1 || changes[0].id != s.ID {
		t.Errorf("the logout made while Redis was down did not reach it: %+v %v", changes, err)
	}
}
