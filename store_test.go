package miniapp

import (
	"bytes"
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
)

// storeContract is one behaviour every backend must have, given two
// nodes on one place and their clock.
type storeContract func(t *testing.T, a, b backend, clk *clock)

// TestStoreContract runs the same behaviours on both backends.
func TestStoreContract(t *testing.T) {
	backends := map[string]func(t *testing.T, clk *clock) (backend, backend){
		"storage": func(t *testing.T, clk *clock) (backend, backend) {
			storage := &certmagic.FileStorage{Path: t.TempDir()}
			return openStorageBackend(t, storage, clk), openStorageBackend(t, storage, clk)
		},
		"redis": func(t *testing.T, clk *clock) (backend, backend) {
			r := startRedis(t)
			return openRedisBackend(t, r.addr, clk), openRedisBackend(t, r.addr, clk)
		},
	}
	contracts := map[string]storeContract{
		"one key set":                 contractKeySet,
		"revocations reach others":    contractRevocations,
		"counters are atomic":         contractCounters,
		"changes are read once":       contractChangesOnce,
		"a joining node reads it all": contractJoin,
		"the session index":           contractSessionIndex,
	}
	for name, open := range backends {
		for what, contract := range contracts {
			t.Run(name+"/"+what, func(t *testing.T) {
				clk := new(clock)
				a, b := open(t, clk)
				contract(t, a, b, clk)
			})
		}
	}
}

// contractKeySet: two nodes making the key set at once get the same.
func contractKeySet(t *testing.T, a, b backend, _ *clock) {
	var wg sync.WaitGroup
	sets := make([][]byte, 2)
	for i, node := range []backend{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sets[i], _ = node.keySet(context.Background(), newKeySet)
		}()
	}
	wg.Wait()
	if len(sets[0]) == 0 || !bytes.Equal(sets[0], sets[1]) {
		t.Errorf("key sets differ: %q and %q", sets[0], sets[1])
	}
}

// contractRevocations: a revocation and a sign-out of one node come to
// the other with their expiry and value.
func contractRevocations(t *testing.T, a, b backend, clk *clock) {
	ctx := context.Background()
	if _, err := b.changes(ctx); err != nil {
		t.Fatal(err)
	}
	id, expires := [16]byte(randomBytes(16)), clk.now().Add(time.Hour).Truncate(time.Second)
	acct := accountID(randomBytes(16))
	if err := a.revoke(ctx, id, expires); err != nil {
		t.Fatal(err)
	}
	if _, err := a.signOut(ctx, acct, 0); err != nil {
		t.Fatal(err)
	}
	got := readUntil(t, b, 2)
	want := []change{{revoked: true, id: id, expires: expires}, {acct: acct, counter: 1}}
	if !slices.EqualFunc(got, want, sameChange) {
		t.Errorf("changes %+v, want %+v", got, want)
	}
}

// contractCounters: sign-outs from two nodes at once each raise the
// counter by one, never below the floor asked for.
func contractCounters(t *testing.T, a, b backend, _ *clock) {
	ctx := context.Background()
	acct := accountID(randomBytes(16))
	var wg sync.WaitGroup
	results := make(chan uint32, 4)
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, err := []backend{a, b}[i%2].signOut(ctx, acct, 0)
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
	if n, err := b.counter(ctx, acct); err != nil || n != 4 || len(seen) != 4 {
		t.Errorf("after 4 sign-outs: counter %d (%v), %d distinct values", n, err, len(seen))
	}
	if n, err := a.signOut(ctx, acct, 40); err != nil || n != 40 {
		t.Errorf("sign-out with a floor of 40: %d %v", n, err)
	}
	if n, err := a.counter(ctx, accountID(randomBytes(16))); err != nil || n != 0 {
		t.Errorf("counter of an account that never signed out: %d %v", n, err)
	}
}

// contractChangesOnce: each change is read once; a read without news
// returns none.
func contractChangesOnce(t *testing.T, a, b backend, clk *clock) {
	ctx := context.Background()
	_ = a.revoke(ctx, [16]byte(randomBytes(16)), clk.now().Add(time.Hour))
	readUntil(t, b, 1)
	if got, err := b.changes(ctx); err != nil || len(got) != 0 {
		t.Errorf("second read: %+v %v", got, err)
	}
}

// contractJoin: a node that comes after the writes reads every one that
// is still in force on its first read.
func contractJoin(t *testing.T, a, b backend, clk *clock) {
	ctx := context.Background()
	for range 300 {
		if err := a.revoke(ctx, [16]byte(randomBytes(16)), clk.now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := b.changes(ctx); err != nil || len(got) != 300 {
		t.Errorf("first read of a joining node: %d changes, %v", len(got), err)
	}
}

// contractSessionIndex: one node's logins, logouts and sign-outs
// everywhere reach the session index of another: the newest 50 listed
// newest first and the rest counted, a logout and a sign out everywhere
// removed, an expired session gone.
func contractSessionIndex(t *testing.T, a, b backend, clk *clock) {
	opts := storeOptions{clock: clk, logger: zap.NewNop()}
	writer, reader := newRevocations(a, opts), newRevocations(b, opts)
	ctx := context.Background()
	acct, brief := accountID(randomBytes(16)), accountID(randomBytes(16))
	now := clk.now().Truncate(time.Second)
	var entries []sessionEntry
	for i := range listedSessions + 2 {
		e := indexEntry(acct, now.Add(time.Duration(i)*time.Second))
		e.counter = 0
		writer.login(ctx, e)
		entries = append(entries, e)
	}
	short := indexEntry(brief, now)
	short.expires = now.Add(time.Minute)
	writer.login(ctx, short)
	newest := len(entries) - 1
	syncUntil(t, reader, func() bool {
		listed, others := reader.listSessions(nil, acct, [16]byte{})
		return len(listed) == listedSessions && others == 2 && listed[0] == entries[newest]
	})
	if listed, _ := reader.listSessions(nil, brief, [16]byte{}); len(listed) != 1 || listed[0] != short {
		t.Errorf("the other account's session: %+v, want %+v", listed, short)
	}

	writer.end(ctx, entries[newest].id, entries[newest].expires)
	syncUntil(t, reader, func() bool {
		listed, others := reader.listSessions(nil, acct, [16]byte{})
		return len(listed)+others == listedSessions+1 && listed[0] == entries[newest-1]
	})
	clk.offset.Add(int64(2 * time.Minute))
	if listed, others := reader.listSessions(nil, brief, [16]byte{}); len(listed) != 0 || others != 0 {
		t.Errorf("an expired session listed: %+v", listed)
	}
	writer.signOutEverywhere(ctx, acct)
	syncUntil(t, reader, func() bool {
		listed, others := reader.listSessions(nil, acct, [16]byte{})
		return len(listed) == 0 && others == 0
	})
}

// syncUntil syncs the list with its store until done, for up to five
// seconds.
func syncUntil(t *testing.T, rv *revocations, done func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !done(); {
		if time.Now().After(deadline) {
			t.Fatal("the change did not come within 5s")
		}
		if err := rv.sync(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}

// readUntil reads changes until n have come, for up to five seconds.
func readUntil(t *testing.T, b backend, n int) []change {
	t.Helper()
	var got []change
	deadline := time.Now().Add(5 * time.Second)
	for len(got) < n && time.Now().Before(deadline) {
		more, err := b.changes(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, more...)
	}
	return got
}

// sameChange compares changes, times by the instant.
func sameChange(x, y change) bool {
	return x.revoked == y.revoked && x.id == y.id && x.expires.Equal(y.expires) && x.acct == y.acct && x.counter == y.counter
}
