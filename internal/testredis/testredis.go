// Package testredis runs a real redis-server for the tests of every
// package: on a free loopback port, with a folder of its own, stopped by
// its PID. Nothing outside tests uses it.
package testredis

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/testport"
	"github.com/redis/go-redis/v9"
)

// Server is a redis-server of a test, appending every write to disk so
// a restart keeps them.
type Server struct {
	// Addr is the server's host:port.
	Addr string
	// Dir is the server's data folder.
	Dir string

	t    testing.TB
	args []string
	cmd  *exec.Cmd
	// tls is how a client of a server that speaks TLS alone connects
	tls *tls.Config
}

// Start starts a redis-server for the test and stops it at the end, with
// the extra arguments given (such as "--requirepass", "secret").
// Without redis-server it skips, except in CI; -short skips it too.
func Start(t testing.TB, args ...string) *Server {
	t.Helper()
	return start(t, nil, args...)
}

// start starts a redis-server for the test, speaking TLS alone when
// client is set (the arguments then name its certificates).
func start(t testing.TB, client *tls.Config, args ...string) *Server {
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
	port := testport.Free(t)
	r := &Server{t: t, Addr: fmt.Sprintf("127.0.0.1:%d", port), Dir: t.TempDir(), args: args, tls: client}
	t.Cleanup(r.Stop) // before Start: a server that starts too slowly is stopped too
	r.Start()
	return r
}

// Start runs redis-server and waits until it answers.
func (r *Server) Start() {
	r.t.Helper()
	_, port, _ := net.SplitHostPort(r.Addr)
	ports := []string{"--port", port}
	if r.tls != nil {
		ports = []string{"--port", "0", "--tls-port", port}
	}
	args := append(append(ports, "--bind", "127.0.0.1", "--dir", r.Dir,
		"--save", "", "--appendonly", "yes", "--appendfsync", "always", "--protected-mode", "yes",
		"--logfile", filepath.Join(r.Dir, "redis.log")), r.args...)
	r.cmd = exec.Command("redis-server", args...)
	if err := r.cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	client := redis.NewClient(&redis.Options{Addr: r.Addr, TLSConfig: r.tls})
	defer func() { _ = client.Close() }()
	deadline := time.Now().Add(10 * time.Second)
	// a server that asks for a password answers NOAUTH once it is up
	for err := client.Ping(context.Background()).Err(); err != nil && !strings.HasPrefix(err.Error(), "NOAUTH"); err = client.Ping(context.Background()).Err() {
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(r.Dir, "redis.log"))
			r.t.Fatalf("redis-server on %s did not start; its log:\n%s", r.Addr, log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop kills redis-server by its PID, as a crash would.
func (r *Server) Stop() {
	if r.cmd != nil && r.cmd.Process != nil {
		_ = r.cmd.Process.Kill()
		_ = r.cmd.Wait()
		r.cmd = nil
	}
}

// Pause stops the server's process (SIGSTOP): it holds its connections
// and answers nothing, as a frozen server does, until Resume.
func (r *Server) Pause() {
	if err := r.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		r.t.Fatal(err)
	}
}

// Resume lets a paused server go on (SIGCONT).
func (r *Server) Resume() {
	if err := r.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		r.t.Fatal(err)
	}
}

// StartCluster starts a Redis Cluster of three primaries for the test
// (redis-server --cluster-enabled yes, then redis-cli --cluster create)
// and returns their addresses once the cluster answers "ok".
func StartCluster(t testing.TB) []string {
	t.Helper()
	var addrs []string
	for range 3 {
		// the cluster bus port too, or Redis takes the port 10000 above
		addrs = append(addrs, Start(t, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000",
			"--cluster-port", strconv.Itoa(testport.Free(t))).Addr)
	}
	out, err := exec.Command("redis-cli", append(append([]string{"--cluster", "create"}, addrs...), "--cluster-replicas", "0", "--cluster-yes")...).CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		ok := true
		for _, addr := range addrs {
			node := redis.NewClient(&redis.Options{Addr: addr})
			info, err := node.ClusterInfo(context.Background()).Result()
			_ = node.Close()
			ok = ok && err == nil && strings.Contains(info, "cluster_state:ok")
		}
		if ok {
			return addrs
		}
		if time.Now().After(deadline) {
			t.Fatal("the Redis Cluster did not become ok")
		}
	}
}
