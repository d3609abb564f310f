package testredis

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/redis/go-redis/v9"
)

// TestServer: a server keeps what it was told across a restart (append
// only, synced), and answers nothing once stopped.
func TestServer(t *testing.T) {
	r := Start(t)
	ctx := context.Background()
	c := redis.NewClient(&redis.Options{Addr: r.Addr})
	defer func() { _ = c.Close() }()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	r.Stop()
	if c.Ping(ctx).Err() == nil {
		t.Fatal("a stopped server answered")
	}
	r.Start()
	if v, err := c.Get(ctx, "k").Result(); err != nil || v != "v" {
		t.Errorf("after a restart: %q %v, want what was set", v, err)
	}
	if _, err := os.Stat(filepath.Join(r.Dir, "redis.log")); err != nil {
		t.Errorf("no log in the server's folder: %v", err)
	}
}
