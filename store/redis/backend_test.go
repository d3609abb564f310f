package redis

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/caddy-miniapp/miniapp/internal/session"
	"github.com/caddy-miniapp/miniapp/internal/testredis"
	"github.com/caddy-miniapp/miniapp/store"
)

// TestRedisTrim: the stream is trimmed by the longest session lifetime
// any site of the realm announces, so a site with a short lifetime keeps
// the changes of one with a long lifetime; a revocation of an expired
// session is not written at all.
func TestRedisTrim(t *testing.T) {
	r := testredis.Start(t)
	clk := new(session.Clock)
	long, short := openBackend(t, r.Addr, clk), openBackend(t, r.Addr, clk)
	short.opts.Remember = 3 * time.Second
	ctx := context.Background()
	// more than one node of the stream's radix tree, which trimming
	// removes whole
	for range 300 {
		if err := long.Revoke(ctx, [16]byte(random(16)), clk.Now().Add(12*time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	clk.Advance(time.Minute)
	if err := short.Revoke(ctx, [16]byte(random(16)), clk.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if n, err := long.client.XLen(ctx, long.stream).Result(); err != nil || n != 301 {
		t.Errorf("the stream holds %d entries (%v) after a short-lived site's write, want all 301", n, err)
	}
	if ttl, err := long.client.PTTL(ctx, long.base+"remember").Result(); err != nil || ttl < 11*time.Hour || ttl > 12*time.Hour {
		t.Errorf("the realm's longest lifetime lives %v (%v), want about 12h", ttl, err)
	}
	if err := long.Revoke(ctx, [16]byte(random(16)), clk.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	if n, _ := long.client.XLen(ctx, long.stream).Result(); n != 301 {
		t.Errorf("stream holds %d entries; an expired session's revocation needs none", n)
	}
	// once the long-lived site has written nothing for its lifetime, the
	// short one trims by its own
	if err := long.client.Del(ctx, long.base+"remember").Err(); err != nil {
		t.Fatal(err)
	}
	if err := short.Revoke(ctx, [16]byte(random(16)), clk.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if n, _ := long.client.XLen(ctx, long.stream).Result(); n >= 300 {
		t.Errorf("stream holds %d entries; trimmed by the short lifetime alone it keeps the last few", n)
	}
}

// TestRedisImpossibleValues: a sign-out counter at the top of its range,
// stored or in the stream, is refused like a forged cookie: a sign-out
// raises from 0 instead of wrapping, and the stream entry is not read.
func TestRedisImpossibleValues(t *testing.T) {
	r := testredis.Start(t)
	clk := new(session.Clock)
	b, reader := openBackend(t, r.Addr, clk), openBackend(t, r.Addr, clk)
	ctx := context.Background()
	acct := store.AccountID(random(16))
	key := fmt.Sprintf("%ssignout:%x", b.base, acct)
	if err := b.client.Set(ctx, key, "4294967295", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := b.Counter(ctx, acct); err != nil || n != 0 {
		t.Errorf("an impossible stored counter read as %d, %v", n, err)
	}
	if n, err := b.SignOut(ctx, acct, 1); err != nil || n != 1 {
		t.Errorf("sign-out over an impossible counter: %d, %v; want 1", n, err)
	}
	// one at the limit cannot be raised: refused likewise
	if err := b.client.Set(ctx, key, store.MaxCounter, 0).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := b.SignOut(ctx, acct, 3); err != nil || n != 3 {
		t.Errorf("sign-out over a counter at the limit: %d, %v; want 3", n, err)
	}
	_, _ = reader.Changes(ctx)
	if err := b.client.XAdd(ctx, &goredis.XAddArgs{Stream: b.stream, Values: []any{"k", "c", "i", fmt.Sprintf("%x", acct), "v", "4294967295"}}).Err(); err != nil {
		t.Fatal(err)
	}
	if err := b.client.XAdd(ctx, &goredis.XAddArgs{Stream: b.stream, Values: []any{"k", "r", "i", fmt.Sprintf("%x", acct), "v", "99999999999999"}}).Err(); err != nil {
		t.Fatal(err)
	}
	changes, err := reader.Changes(ctx)
	if err != nil || len(changes) != 0 {
		t.Errorf("impossible stream entries read as %+v, %v", changes, err)
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
	if changes, err := reader.Changes(ctx); err != nil || len(withoutGeneration(changes)) != 3 {
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
		changes = append(changes, withoutGeneration(more)...)
		if err == nil && len(changes) > 0 {
			break
		}
	}
	if len(changes) != 1 || changes[0].ID != id {
		t.Errorf("after Redis lost its data: %+v; want the new revocation", changes)
	}
}

// TestRedisStrikesShared: failures counted on one node count on every
// node, until their window ends.
func TestRedisStrikesShared(t *testing.T) {
	r := testredis.Start(t)
	clk := new(session.Clock)
	a, b := openBackend(t, r.Addr, clk), openBackend(t, r.Addr, clk)
	ctx := context.Background()
	for range 3 {
		if _, _, err := a.Strike(ctx, "code:ada", 1, 2*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	n, until, err := b.Strikes(ctx, "code:ada")
	if n != 3 || err != nil || !until.After(clk.Now()) {
		t.Fatalf("another node reads %d until %v, %v; want 3", n, until, err)
	}
	time.Sleep(until.Sub(clk.Now()) + 100*time.Millisecond)
	if n, _, err := b.Strikes(ctx, "code:ada"); n != 0 || err != nil {
		t.Errorf("after the window: %d %v", n, err)
	}
}
