package redis

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/session"
	"github.com/caddy-miniapp/miniapp/internal/testredis"
	"github.com/caddy-miniapp/miniapp/store"
	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
)

// openBackend opens the default realm in the test's Redis.
func openBackend(t testing.TB, addr string, clk *session.Clock) *redisBackend {
	t.Helper()
	st := &Store{Address: []string{addr}}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := st.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	b, err := st.Open(ctx, store.Options{Realm: "miniapp", Every: time.Second, Remember: 12 * time.Hour, Now: clk.Now, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b.(*redisBackend)
}

// random returns n random bytes.
func random(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// TestRedisKeys: revocations are keys that Redis expires itself, and the
// stream of changes is trimmed to a session lifetime.
func TestRedisKeys(t *testing.T) {
	r := testredis.Start(t)
	clk := new(session.Clock)
	b := openBackend(t, r.Addr, clk)
	ctx := context.Background()
	id := [16]byte(random(16))
	if err := b.Revoke(ctx, id, clk.Now().Add(90*time.Second)); err != nil {
		t.Fatal(err)
	}
	ttl, err := b.client.TTL(ctx, fmt.Sprintf("miniapp:{miniapp}:revoked:%x", id)).Result()
	if err != nil || ttl <= 80*time.Second || ttl > 90*time.Second {
		t.Errorf("revocation key TTL %v, %v; want about 90s", ttl, err)
	}
	if err := b.Revoke(ctx, [16]byte(random(16)), clk.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	if n, _ := b.client.XLen(ctx, b.stream).Result(); n != 1 {
		t.Errorf("stream holds %d entries; an expired session's revocation needs none", n)
	}
}

// TestRedisLostData: when Redis loses its data and starts its stream
// again, a node still reads the new entries.
func TestRedisLostData(t *testing.T) {
	r := testredis.Start(t)
	clk := new(session.Clock)
	writer, reader := openBackend(t, r.Addr, clk), openBackend(t, r.Addr, clk)
	ctx := context.Background()
	for range 3 {
		_ = writer.Revoke(ctx, [16]byte(random(16)), clk.Now().Add(time.Hour))
	}
	if changes, err := reader.Changes(ctx); err != nil || len(changes) != 3 {
		t.Fatalf("first read: %d %v", len(changes), err)
	}
	r.Stop()
	if err := os.RemoveAll(filepath.Join(r.Dir, "appendonlydir")); err != nil {
		t.Fatal(err)
	}
	r.Start()
	id := [16]byte(random(16))
	if err := writer.Revoke(ctx, id, clk.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	var changes []store.Change
	for range 3 { // a read may fail once on a connection of the old server
		more, err := reader.Changes(ctx)
		changes = append(changes, more...)
		if err == nil && len(changes) > 0 {
			break
		}
	}
	if len(changes) != 1 || changes[0].ID != id {
		t.Errorf("after Redis lost its data: %+v; want the new revocation", changes)
	}
}
