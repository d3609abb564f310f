package store_test

import (
	"bytes"
	"context"
	"slices"
	"sync"
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
)

// storeContract is one behaviour every backend must have, given two
// nodes on one place and their clock.
type storeContract func(t *testing.T, a, b store.Backend, clk *session.Clock)

// openNode opens the default realm of the store as a node of its own.
func openNode(t *testing.T, mod store.Module, clk *session.Clock) store.Backend {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	b, err := mod.Open(ctx, store.Options{Realm: "miniapp", Every: time.Second, Remember: 12 * time.Hour, Now: clk.Now, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// TestStoreContract runs the same behaviours on both backends.
func TestStoreContract(t *testing.T) {
	backends := map[string]func(t *testing.T) store.Module{
		"storage": func(t *testing.T) store.Module {
			return storage.New(&certmagic.FileStorage{Path: t.TempDir()})
		},
		"redis": func(t *testing.T) store.Module {
			mod := &redis.Store{Address: []string{testredis.Start(t).Addr}}
			if err := mod.Provision(caddy.Context{}); err != nil {
				t.Fatal(err)
			}
			return mod
		},
		// a Redis Cluster of three primaries: every key of a realm is in
		// its {realm} slot, so each script and stream read runs on one node
		"redis cluster": func(t *testing.T) store.Module {
			mod := &redis.Store{Address: testredis.StartCluster(t)}
			if err := mod.Provision(caddy.Context{}); err != nil {
				t.Fatal(err)
			}
			return mod
		},
	}
	contracts := map[string]storeContract{
		"one key set":                 contractKeySet,
		"revocations reach others":    contractRevocations,
		"counters are atomic":         contractCounters,
		"changes are read once":       contractChangesOnce,
		"a joining node reads it all": contractJoin,
		"the session index":           contractSessionIndex,
		"one generation":              contractGeneration,
		"known devices":               contractDevices,
		"last use reaches others":     contractUse,
		"records swap for every node": contractRecords,
		"strikes count in a window":   contractStrikes,
	}
	for name, open := range backends {
		for what, contract := range contracts {
			t.Run(name+"/"+what, func(t *testing.T) {
				clk := new(session.Clock)
				mod := open(t)
				contract(t, openNode(t, mod, clk), openNode(t, mod, clk), clk)
			})
		}
	}
}

// contractKeySet: two nodes making the key set at once get the same.
func contractKeySet(t *testing.T, a, b store.Backend, _ *session.Clock) {
	var wg sync.WaitGroup
	sets := make([][]byte, 2)
	for i, node := range []store.Backend{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sets[i], _ = node.KeySet(context.Background(), newKeySet)
		}()
	}
	wg.Wait()
	if len(sets[0]) == 0 || !bytes.Equal(sets[0], sets[1]) {
		t.Errorf("key sets differ: %q and %q", sets[0], sets[1])
	}
}

// contractRevocations: a revocation and a sign-out of one node come to
// the other with their expiry and value.
func contractRevocations(t *testing.T, a, b store.Backend, clk *session.Clock) {
	ctx := context.Background()
	if _, err := b.Changes(ctx); err != nil {
		t.Fatal(err)
	}
	id, expires := [16]byte(session.Random(16)), clk.Now().Add(time.Hour).Truncate(time.Second)
	acct := store.AccountID(session.Random(16))
	if err := a.Revoke(ctx, id, expires); err != nil {
		t.Fatal(err)
	}
	if _, err := a.SignOut(ctx, acct, 0); err != nil {
		t.Fatal(err)
	}
	got := readUntil(t, b, 2)
	want := []store.Change{{Revoked: true, ID: id, Expires: expires}, {Account: acct, Counter: 1}}
	if !slices.EqualFunc(got, want, sameChange) {
		t.Errorf("changes %+v, want %+v", got, want)
	}
}

// contractCounters: sign-outs from two nodes at once each raise the
// counter by one, never below the floor asked for.
func contractCounters(t *testing.T, a, b store.Backend, _ *session.Clock) {
	ctx := context.Background()
	acct := store.AccountID(session.Random(16))
	var wg sync.WaitGroup
	results := make(chan uint32, 4)
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, err := []store.Backend{a, b}[i%2].SignOut(ctx, acct, 0)
			if err != nil {
				t.Error(err)
			}
			results <- n
		}()
	}
	wg.Wait()
	close(results)
	seen := map[uint32]bool{}
	for n := range results {
		seen[n] = true
	}
	if n, err := b.Counter(ctx, acct); err != nil || n != 4 || len(seen) != 4 {
		t.Errorf("after 4 sign-outs: counter %d (%v), %d distinct values", n, err, len(seen))
	}
	if n, err := a.SignOut(ctx, acct, 40); err != nil || n != 40 {
		t.Errorf("sign-out with a floor of 40: %d %v", n, err)
	}
	if n, err := a.Counter(ctx, store.AccountID(session.Random(16))); err != nil || n != 0 {
		t.Errorf("counter of an account that never signed out: %d %v", n, err)
	}
}

// contractChangesOnce: each change is read once; a read without news
// returns none.
func contractChangesOnce(t *testing.T, a, b store.Backend, clk *session.Clock) {
	ctx := context.Background()
	_ = a.Revoke(ctx, [16]byte(session.Random(16)), clk.Now().Add(time.Hour))
	readUntil(t, b, 1)
	if got, err := b.Changes(ctx); err != nil || len(got) != 0 {
		t.Errorf("second read: %+v %v", got, err)
	}
}

// contractJoin: a node that comes after the writes reads every one that
// is still in force on its first read.
func contractJoin(t *testing.T, a, b store.Backend, clk *session.Clock) {
	ctx := context.Background()
	for range 300 {
		if err := a.Revoke(ctx, [16]byte(session.Random(16)), clk.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := b.Changes(ctx); err != nil || len(withoutGeneration(got)) != 300 {
		t.Errorf("first read of a joining node: %d changes, %v", len(got), err)
	}
}

// contractSessionIndex: one node's logins, logouts and sign-outs
// everywhere reach the session index of another: the newest 50 listed
// newest first and the rest counted, a logout and a sign out everywhere
// removed, an expired session gone.
func contractSessionIndex(t *testing.T, a, b store.Backend, clk *session.Clock) {
	opts := store.Options{Now: clk.Now, Logger: zap.NewNop()}
	writer, reader := store.NewRealm(a, opts), store.NewRealm(b, opts)
	ctx := context.Background()
	acct, brief := store.AccountID(session.Random(16)), store.AccountID(session.Random(16))
	now := clk.Now().Truncate(time.Second)
	// sessions of the store's generation, as a login makes them
	syncUntil(t, writer, func() bool { return writer.Generation() != 0 })
	var entries []store.Entry
	for i := range listedSessions + 2 {
		e := entryOf(acct, now.Add(time.Duration(i)*time.Second))
		e.Counter, e.Generation = 0, writer.Generation()
		writer.Login(ctx, e)
		entries = append(entries, e)
	}
	short := entryOf(brief, now)
	short.Expires, short.Generation = now.Add(time.Minute), writer.Generation()
	writer.Login(ctx, short)
	newest := len(entries) - 1
	syncUntil(t, reader, func() bool {
		listed, others := reader.Sessions(nil, acct, [16]byte{})
		return len(listed) == listedSessions && others == 2 && listed[0] == entries[newest]
	})
	if listed, _ := reader.Sessions(nil, brief, [16]byte{}); len(listed) != 1 || listed[0] != short {
		t.Errorf("the other account's session: %+v, want %+v", listed, short)
	}

	writer.Revoke(ctx, entries[newest].ID, entries[newest].Expires)
	syncUntil(t, reader, func() bool {
		listed, others := reader.Sessions(nil, acct, [16]byte{})
		return len(listed)+others == listedSessions+1 && listed[0] == entries[newest-1]
	})
	clk.Advance(2 * time.Minute)
	if listed, others := reader.Sessions(nil, brief, [16]byte{}); len(listed) != 0 || others != 0 {
		t.Errorf("an expired session listed: %+v", listed)
	}
	writer.SignOutEverywhere(ctx, acct)
	syncUntil(t, reader, func() bool {
		listed, others := reader.Sessions(nil, acct, [16]byte{})
		return len(listed) == 0 && others == 0
	})
}

// syncUntil syncs the list with its store until done, for up to five
// seconds.
func syncUntil(t *testing.T, rv *store.Realm, done func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !done(); {
		if time.Now().After(deadline) {
			t.Fatal("the change did not come within 5s")
		}
		if err := rv.Sync(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}

// readUntil reads changes until n have come, for up to five seconds.
func readUntil(t *testing.T, b store.Backend, n int) []store.Change {
	t.Helper()
	var got []store.Change
	deadline := time.Now().Add(5 * time.Second)
	for len(got) < n && time.Now().Before(deadline) {
		more, err := b.Changes(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, withoutGeneration(more)...)
	}
	return got
}

// sameChange compares changes, times by the instant.
func sameChange(x, y store.Change) bool {
	return x.Revoked == y.Revoked && x.ID == y.ID && x.Expires.Equal(y.Expires) && x.Account == y.Account && x.Counter == y.Counter
}

// listed is how many sessions of an account the index lists with their
// details.
const listedSessions = 50

// entryOf is a session of acct that started at start and lasts an hour.
func entryOf(acct store.AccountID, start time.Time) store.Entry {
	return store.Entry{ID: [16]byte(session.Random(16)), Account: acct, Counter: 1, Factors: 1, Started: start, Expires: start.Add(time.Hour),
		Address: "203.0.113.7", Device: "Firefox on Linux"}
}

// newKeySet makes a key set of one random key.
func newKeySet() ([]byte, error) {
	return []byte(`{"keys":["` + session.NewSecret() + `"]}`), nil
}

// withoutGeneration leaves out the generation a first read reports.
func withoutGeneration(changes []store.Change) []store.Change {
	return slices.DeleteFunc(changes, func(c store.Change) bool { return c.Generation != 0 })
}

// contractGeneration: two nodes of one store report the same realm
// generation on their first read, and not again while it stays.
func contractGeneration(t *testing.T, a, b store.Backend, clk *session.Clock) {
	ctx := context.Background()
	generation := func(node store.Backend) uint64 {
		changes, err := node.Changes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var g uint64
		for _, c := range changes {
			if c.Generation != 0 {
				if g != 0 {
					t.Fatalf("two generations in one read: %d and %d", g, c.Generation)
				}
				g = c.Generation
			}
		}
		return g
	}
	first, second := generation(a), generation(b)
	if first == 0 || first != second {
		t.Fatalf("generations %d and %d on the first reads; want one, not 0", first, second)
	}
	_ = a.Revoke(ctx, [16]byte(session.Random(16)), clk.Now().Add(time.Hour))
	if g := generation(b); g != 0 {
		t.Errorf("generation %d reported again", g)
	}
}

// contractDevices: the newest MaxDevices devices of an account are
// known on every node, older and expired ones are not, and an account's
// devices are its own.
func contractDevices(t *testing.T, a, b store.Backend, clk *session.Clock) {
	ctx := context.Background()
	acct, other := store.AccountID(session.Random(16)), store.AccountID(session.Random(16))
	var ids [][16]byte
	for i := range store.MaxDevices + 5 {
		id := [16]byte(session.Random(16))
		ids = append(ids, id)
		if err := []store.Backend{a, b}[i%2].AddDevice(ctx, acct, id, clk.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		clk.Advance(time.Second)
	}
	for i, id := range ids {
		known, err := b.HasDevice(ctx, acct, id)
		if err != nil || known != (i >= 5) {
			t.Errorf("device %d of %d: known %v (%v)", i+1, len(ids), known, err)
		}
	}
	// one known again moves to the newest
	if err := a.AddDevice(ctx, acct, ids[5], clk.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := a.AddDevice(ctx, acct, [16]byte(session.Random(16)), clk.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if known, _ := b.HasDevice(ctx, acct, ids[5]); !known {
		t.Error("a device signed in with again was dropped as the oldest")
	}
	if known, _ := b.HasDevice(ctx, other, ids[24]); known {
		t.Error("another account's device known")
	}
	clk.Advance(2 * time.Hour)
	if known, _ := a.HasDevice(ctx, acct, ids[24]); known {
		t.Error("an expired device known")
	}
}

// contractUse: a session's last use recorded on one node reaches the
// other's realm, which answers it from memory.
func contractUse(t *testing.T, a, b store.Backend, clk *session.Clock) {
	ctx := context.Background()
	reader := store.NewRealm(b, store.Options{Now: clk.Now, Logger: zap.NewNop()})
	id, expires, at := [16]byte(session.Random(16)), clk.Now().Add(time.Hour).Truncate(time.Second), clk.Now().Truncate(time.Second)
	if err := a.Use(ctx, id, expires, at); err != nil {
		t.Fatal(err)
	}
	syncUntil(t, reader, func() bool { return reader.LastUse(id, expires).Equal(at) })
	if !reader.LastUse([16]byte(session.Random(16)), expires).IsZero() {
		t.Error("a last use of a session never used")
	}
}
