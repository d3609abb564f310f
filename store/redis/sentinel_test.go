package redis

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/session"
	"github.com/caddy-miniapp/miniapp/internal/testport"
	"github.com/caddy-miniapp/miniapp/internal/testredis"
	"github.com/caddy-miniapp/miniapp/store"
	goredis "github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// startSentinel runs redis-server in sentinel mode on a free loopback
// port, watching the primary as "miniapp" with a quorum of two, and
// stops it at the end of the test.
func startSentinel(t *testing.T, primary string) string {
	t.Helper()
	port := testport.Free(t)
	host, primaryPort, _ := net.SplitHostPort(primary)
	conf := filepath.Join(t.TempDir(), "sentinel.conf")
	body := fmt.Sprintf("port %d\nbind 127.0.0.1\nsentinel monitor miniapp %s %s 2\nsentinel down-after-milliseconds miniapp 500\nsentinel failover-timeout miniapp 3000\n",
		port, host, primaryPort)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("redis-server", conf, "--sentinel")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	waitFor(t, 10*time.Second, "the sentinel to see the primary", func() bool { return masterOf(addr) == primary })
	return addr
}

// masterOf is the primary a sentinel names, or empty.
func masterOf(sentinel string) string {
	c := goredis.NewSentinelClient(&goredis.Options{Addr: sentinel})
	defer func() { _ = c.Close() }()
	addr, err := c.GetMasterAddrByName(context.Background(), "miniapp").Result()
	if err != nil || len(addr) != 2 {
		return ""
	}
	return net.JoinHostPort(addr[0], addr[1])
}

// waitFor polls until done, or fails the test after limit.
func waitFor(t *testing.T, limit time.Duration, what string, done func() bool) {
	t.Helper()
	for deadline := time.Now().Add(limit); !done(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", limit, what)
		}
	}
}

// TestSentinelFailover: two nodes on a primary and a replica watched by
// three sentinels. The primary is killed; the sentinels promote the
// replica, and logins, logouts and sign-outs go on. A logout made during
// the switch reaches the other node once it is over, and nothing written
// before it is lost.
func TestSentinelFailover(t *testing.T) {
	// Redis waits 5 s by default before a replica's first full sync, for
	// more replicas to join it; this test has one
	primary := testredis.Start(t, "--repl-diskless-sync-delay", "0")
	replica := testredis.Start(t, "--replicaof", "127.0.0.1", primary.Addr[len("127.0.0.1:"):])
	replicaClient := goredis.NewClient(&goredis.Options{Addr: replica.Addr})
	defer func() { _ = replicaClient.Close() }()
	waitFor(t, 15*time.Second, "the replica's link to the primary", func() bool {
		info, err := replicaClient.Info(context.Background(), "replication").Result()
		return err == nil && strings.Contains(info, "master_link_status:up")
	})
	var sentinels []string
	for range 3 {
		sentinels = append(sentinels, startSentinel(t, primary.Addr))
	}
	clk := new(session.Clock)
	node := func() *store.Realm {
		b := openStore(t, &Store{Address: sentinels, MasterName: "miniapp"}, clk)
		rv := store.NewRealm(b, store.Options{Now: clk.Now, Logger: zap.NewNop()})
		if err := rv.Sync(context.Background()); err != nil {
			t.Fatal(err)
		}
		return rv
	}
	a, b := node(), node()
	ctx := context.Background()
	expires := clk.Now().Add(time.Hour)
	acct := store.AccountID(session.Random(16))
	before, during, after := [16]byte(session.Random(16)), [16]byte(session.Random(16)), [16]byte(session.Random(16))
	revoked := func(rv *store.Realm, ids ...[16]byte) bool {
		_ = rv.Sync(ctx)
		for _, id := range ids {
			if !rv.RevokedID(id, expires) {
				return false
			}
		}
		return true
	}

	a.Revoke(ctx, before, expires)
	if !a.SignOutEverywhere(ctx, acct) {
		t.Fatal("sign out everywhere refused")
	}
	waitFor(t, 5*time.Second, "the first logout on the other node", func() bool { return revoked(b, before) })
	// the replica has every write before the primary goes
	waitFor(t, 10*time.Second, "the replica to catch up", func() bool {
		n, err := replicaClient.XLen(ctx, "miniapp:{miniapp}:changes").Result()
		return err == nil && n >= 2
	})

	primary.Stop()
	a.Revoke(ctx, during, expires) // kept pending while there is no primary
	waitFor(t, 30*time.Second, "the sentinels to promote the replica", func() bool { return masterOf(sentinels[0]) == replica.Addr })
	waitFor(t, 15*time.Second, "the logout made during the switch to reach the other node", func() bool {
		_ = a.Sync(ctx) // the loop's retry of the pending write
		return revoked(b, before, during)
	})
	if a.Pending() != 0 {
		t.Errorf("%d writes still pending after the switch", a.Pending())
	}

	b.Revoke(ctx, after, expires)
	e := store.Entry{ID: [16]byte(session.Random(16)), Account: acct, Counter: 1, Factors: 1, Started: clk.Now().Truncate(time.Second), Expires: expires}
	b.Login(ctx, e)
	if !b.SignOutEverywhere(ctx, acct) {
		t.Fatal("sign out everywhere refused after the switch")
	}
	waitFor(t, 5*time.Second, "a logout after the switch on the other node", func() bool { return revoked(a, before, during, after) })
	if counter := a.Counter(ctx, acct); counter != 2 {
		t.Errorf("sign-out counter %d after two sign-outs, one on each side of the switch; want 2", counter)
	}
}
