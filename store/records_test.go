package store_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/session"
	"github.com/caddy-miniapp/miniapp/internal/testredis"
	"github.com/caddy-miniapp/miniapp/store"
	"github.com/caddy-miniapp/miniapp/store/redis"
	"github.com/caddy-miniapp/miniapp/store/storage"
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// contractRecords: a record swaps only from the value the store holds,
// for every node, and its changes and removal reach the other node.
func contractRecords(t *testing.T, a, b store.Backend, _ *session.Clock) {
	ctx := context.Background()
	if _, err := b.Changes(ctx); err != nil {
		t.Fatal(err)
	}
	const key = "totp:ada"
	v1, v2, v3 := []byte("first"), []byte("second"), []byte("third")
	if ok, err := a.SwapRecord(ctx, key, nil, v1); !ok || err != nil {
		t.Fatalf("first swap: %v %v", ok, err)
	}
	if ok, err := b.SwapRecord(ctx, key, nil, v2); ok || err != nil {
		t.Fatalf("a swap from none over a record: %v %v", ok, err)
	}
	if ok, err := b.SwapRecord(ctx, key, v2, v3); ok || err != nil {
		t.Fatalf("a swap from a value the store does not hold: %v %v", ok, err)
	}
	if got := recordFrom(t, b, key); !bytes.Equal(got, v1) {
		t.Fatalf("the other node read %q, want %q", got, v1)
	}
	if got, err := b.Record(ctx, key); err != nil || !bytes.Equal(got, v1) {
		t.Fatalf("Record: %q %v", got, err)
	}
	if ok, err := b.SwapRecord(ctx, key, v1, nil); !ok || err != nil {
		t.Fatalf("removal: %v %v", ok, err)
	}
	if got := recordFrom(t, a, key); got != nil {
		t.Fatalf("after the removal the other node holds %q", got)
	}
	if got, err := a.Record(ctx, key); err != nil || got != nil {
		t.Fatalf("Record of a removed record: %q %v", got, err)
	}
}

// recordFrom reads changes until one of the record comes, and returns
// its value.
func recordFrom(t *testing.T, b store.Backend, key string) []byte {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		changes, err := b.Changes(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for i := len(changes) - 1; i >= 0; i-- {
			if changes[i].Record == key {
				return changes[i].Value
			}
		}
	}
	t.Fatal("the record's change did not come within 5s")
	return nil
}

// contractStrikes: each strike counts within the window it opened, and
// may be taken back.
func contractStrikes(t *testing.T, a, _ store.Backend, clk *session.Clock) {
	ctx := context.Background()
	if n, _, err := a.Strikes(ctx, "code:ada"); n != 0 || err != nil {
		t.Fatalf("before any strike: %d %v", n, err)
	}
	for want := 1; want <= 3; want++ {
		n, until, err := a.Strike(ctx, "code:ada", 1, time.Minute)
		if n != want || err != nil || until.Before(clk.Now().Add(50*time.Second)) || until.After(clk.Now().Add(time.Minute)) {
			t.Fatalf("strike %d: %d until %v, %v", want, n, until, err)
		}
	}
	if n, _, err := a.Strikes(ctx, "code:ada"); n != 3 || err != nil {
		t.Fatalf("Strikes: %d %v, want 3", n, err)
	}
	if n, _, _ := a.Strikes(ctx, "code:bob"); n != 0 {
		t.Fatalf("another key counted %d", n)
	}
	if n, _, err := a.Strike(ctx, "code:ada", -1, time.Minute); n != 2 || err != nil {
		t.Fatalf("an attempt taken back: %d %v, want 2", n, err)
	}
	if n, _, err := a.Strike(ctx, "code:carol", -1, time.Minute); n != 0 || err != nil {
		t.Fatalf("taking back without a window: %d %v", n, err)
	}
	if n, _, _ := a.Strikes(ctx, "code:carol"); n != 0 {
		t.Fatalf("taking back opened a window of %d", n)
	}
}

// TestRecordsOutliveLoss: a node that joins reads every record, and when
// the store loses its data the nodes that hold records write them back,
// and say so in an error line.
func TestRecordsOutliveLoss(t *testing.T) {
	type backend struct {
		mod  store.Module
		lose func()
	}
	backends := map[string]func(t *testing.T) backend{
		"storage": func(t *testing.T) backend {
			dir := t.TempDir()
			return backend{storage.New(&certmagic.FileStorage{Path: dir}), func() {
				if err := os.RemoveAll(filepath.Join(dir, "miniapp")); err != nil {
					t.Fatal(err)
				}
			}}
		},
		"redis": func(t *testing.T) backend {
			r := testredis.Start(t)
			mod := &redis.Store{Address: []string{r.Addr}}
			if err := mod.Provision(caddy.Context{}); err != nil {
				t.Fatal(err)
			}
			return backend{mod, func() {
				r.Stop()
				if err := os.RemoveAll(filepath.Join(r.Dir, "appendonlydir")); err != nil {
					t.Fatal(err)
				}
				r.Start()
			}}
		},
	}
	for name, open := range backends {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			clk := new(session.Clock)
			be := open(t)
			core, logs := observer.New(zap.InfoLevel)
			rv := store.NewRealm(openNode(t, be.mod, clk), store.Options{Now: clk.Now, Logger: zap.New(core)})
			if err := rv.Sync(ctx); err != nil {
				t.Fatal(err)
			}
			for _, key := range []string{"totp:ada", "totp:bob"} {
				if ok, err := rv.SwapRecord(ctx, key, nil, []byte("sealed "+key)); !ok || err != nil {
					t.Fatalf("swap: %v %v", ok, err)
				}
			}
			joined := store.NewRealm(openNode(t, be.mod, clk), store.Options{Now: clk.Now, Logger: zap.NewNop()})
			if err := joined.Sync(ctx); err != nil {
				t.Fatal(err)
			}
			if got := joined.Record("totp:bob"); string(got) != "sealed totp:bob" || len(joined.RecordKeys()) != 2 {
				t.Fatalf("a joining node holds %q of %v", got, joined.RecordKeys())
			}
			be.lose()
			for deadline := time.Now().Add(10 * time.Second); logs.FilterMessageSnippet("are written back").Len() == 0; {
				if time.Now().After(deadline) {
					t.Fatalf("no record written back after the loss; logged %v", logs.All())
				}
				_ = rv.Sync(ctx)
			}
			fresh := store.NewRealm(openNode(t, be.mod, clk), store.Options{Now: clk.Now, Logger: zap.NewNop()})
			if err := fresh.Sync(ctx); err != nil {
				t.Fatal(err)
			}
			if got := fresh.Record("totp:ada"); string(got) != "sealed totp:ada" {
				t.Errorf("after the loss a new node reads %q", got)
			}
		})
	}
}
