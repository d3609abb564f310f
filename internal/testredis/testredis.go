// Package testredis runs a real redis-server for the tests of every
// package: on a free loopback port, with a folder of its own, stopped by
// its PID. Nothing outside tests uses it.
package testredis

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Server is a redis-server of a test, appending every write to disk so
// a restart keeps them.
type Server struct {
	// Addr is the server's host:port.
	Addr string
	// Dir is the server's data folder.
	Dir string

	t   testing.TB
	cmd *exec.Cmd
}

// Start starts a redis-server for the test and stops it at the end.
// Without redis-server it skips, except in CI; -short skips it too.
func Start(t testing.TB) *Server {
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
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	r := &Server{t: t, Addr: fmt.Sprintf("127.0.0.1:%d", port), Dir: t.TempDir()}
	r.Start()
	t.Cleanup(r.Stop)
	return r
}

// Start runs redis-server and waits until it answers.
func (r *Server) Start() {
	r.t.Helper()
	_, port, _ := net.SplitHostPort(r.Addr)
	r.cmd = exec.Command("redis-server", "--port", port, "--bind", "127.0.0.1", "--dir", r.Dir,
		"--save", "", "--appendonly", "yes", "--appendfsync", "always", "--protected-mode", "yes")
	if err := r.cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	client := redis.NewClient(&redis.Options{Addr: r.Addr})
	defer client.Close()
	deadline := time.Now().Add(10 * time.Second)
	for client.Ping(context.Background()).Err() != nil {
		if time.Now().After(deadline) {
			r.t.Fatalf("redis-server on %s did not start", r.Addr)
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
