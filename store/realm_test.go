package store

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// TestRealmExpire keeps a revocation in memory until its session would
// have expired, then drops its whole hour, and with it the session's
// entry in the index.
func TestRealmExpire(t *testing.T) {
	rv := NewRealm(nil, Options{Now: time.Now, Logger: zap.NewNop()})
	acct := AccountID(random(16))
	now := time.Now().Truncate(time.Second)
	ended, live := indexEntry(acct, now), indexEntry(acct, now)
	rv.mu.Lock()
	rv.applyLocked(Change{Login: &ended})
	rv.applyLocked(Change{Login: &live})
	rv.applyLocked(Change{Revoked: true, ID: ended.ID, Expires: ended.Expires})
	rv.expireLocked(now)
	rv.mu.Unlock()
	if !rv.Revoked(acct, ended.ID, ended.Expires, 1, 0) || rv.Revoked(acct, live.ID, live.Expires, 1, 0) {
		t.Fatal("the revocation is not in force, or another session is refused")
	}
	if n := rv.Revocations(); n != 1 {
		t.Fatalf("%d revocations held, want 1", n)
	}
	other := AccountID(random(16))
	if rv.raise(other, 2) != 2 || !rv.Revoked(other, live.ID, live.Expires, 1, 0) || rv.Revoked(other, live.ID, live.Expires, 2, 0) {
		t.Fatal("a session below the account's sign-out counter is not refused, or one at it is")
	}
	rv.mu.Lock()
	rv.expireLocked(now.Add(2 * time.Hour))
	hours, indexed := len(rv.byHour), len(rv.sessions.owner)
	rv.mu.Unlock()
	if hours != 0 || indexed != 0 || rv.Revocations() != 0 {
		t.Errorf("%d hours of expired revocations and %d expired sessions kept in memory", hours, indexed)
	}
}

// TestRealmVersion: every change taken in counts; reads, a session's
// last use and what changes nothing (a known generation, record,
// revocation or login again, as Redis echoes a node's own writes, a
// lower counter) do not.
func TestRealmVersion(t *testing.T) {
	rv := NewRealm(nil, Options{Now: time.Now, Logger: zap.NewNop()})
	acct := AccountID(random(16))
	e := indexEntry(acct, time.Now().Truncate(time.Second))
	e.Generation = 7
	v := rv.Version()
	for _, c := range []Change{{Generation: 7}, {Login: &e}, {Revoked: true, ID: e.ID, Expires: e.Expires}, {Account: acct, Counter: 3},
		{Record: "totp:ada", Value: []byte("x")}, {Record: "totp:ada", Value: []byte("y")}, {Record: "totp:ada"}} {
		rv.mu.Lock()
		rv.applyLocked(c)
		rv.mu.Unlock()
		if rv.Version() != v+1 {
			t.Errorf("%+v: version %d, want %d", c, rv.Version(), v+1)
		}
		v = rv.Version()
	}
	rv.Sessions(nil, acct, e.ID)
	for _, c := range []Change{{Generation: 7}, {Account: acct, Counter: 2}, {Record: "totp:ada"}, {ID: e.ID, Expires: e.Expires, Used: time.Now()},
		{Revoked: true, ID: e.ID, Expires: e.Expires}, {Login: &e}} {
		rv.mu.Lock()
		rv.applyLocked(c)
		rv.mu.Unlock()
	}
	rv.mu.Lock()
	rv.applyLocked(Change{Record: "totp:bob", Value: []byte("x")})
	rv.applyLocked(Change{Record: "totp:bob", Value: []byte("x")})
	rv.mu.Unlock()
	if rv.Version() != v+1 {
		t.Errorf("a read, a last use or a change of nothing changed the version: %d, want %d", rv.Version(), v+1)
	}
}

// TestRealmGeneration: once the store reports a new generation, the
// sessions of the old one (and of none) are refused, the index keeps the
// new generation's sessions alone, the sign-out counters start again from
// the store's, and revocations stay, so that a logout read in the same
// batch as the change is never lost.
func TestRealmGeneration(t *testing.T) {
	core, logs := observer.New(zap.DebugLevel)
	rv := NewRealm(nil, Options{Now: time.Now, Logger: zap.New(core)})
	acct := AccountID(random(16))
	old := indexEntry(acct, time.Now().Truncate(time.Second))
	old.Generation = 7
	if rv.Revoked(acct, old.ID, old.Expires, 1, 0) {
		t.Fatal("a session refused while the generation is not known")
	}
	rv.mu.Lock()
	rv.applyLocked(Change{Generation: 7})
	rv.applyLocked(Change{Login: &old})
	rv.applyLocked(Change{Account: acct, Counter: 5})
	rv.mu.Unlock()
	if rv.Generation() != 7 || rv.Revoked(acct, old.ID, old.Expires, 5, 7) || logs.Len() != 0 {
		t.Fatalf("the first generation reported: %d, or a session of it refused, or %d lines logged", rv.Generation(), logs.Len())
	}
	fresh := indexEntry(acct, time.Now().Truncate(time.Second))
	fresh.Generation, fresh.Counter = 9, 0
	loggedOut := [16]byte{1}
	rv.mu.Lock()
	rv.applyLocked(Change{Generation: 9})
	rv.applyLocked(Change{Revoked: true, ID: loggedOut, Expires: old.Expires})
	rv.applyLocked(Change{Login: &fresh})
	rv.applyLocked(Change{Login: &old}) // the old generation's, read late
	rv.mu.Unlock()
	if !rv.Revoked(acct, old.ID, old.Expires, 5, 7) || !rv.Revoked(acct, old.ID, old.Expires, 5, 0) {
		t.Error("a session of the lost generation, or of none, accepted")
	}
	if rv.Revoked(acct, fresh.ID, fresh.Expires, 0, 9) {
		t.Error("a session of the new generation under the store's new counter refused")
	}
	if !rv.Revoked(acct, loggedOut, old.Expires, 0, 9) {
		t.Error("a logout read with the new generation lost")
	}
	if listed, _ := rv.Sessions(nil, acct, [16]byte{}); len(listed) != 1 || listed[0].ID != fresh.ID {
		t.Errorf("listed %+v, want the new generation's session alone", listed)
	}
	if logs.FilterMessageSnippet("lost the realm's data").Len() != 1 {
		t.Errorf("%d lines logged for the loss, want 1", logs.Len())
	}
}

// signOuts is the account's sign-out counter in the realm's memory.
func signOuts(rv *Realm, acct AccountID) uint32 {
	rv.mu.RLock()
	defer rv.mu.RUnlock()
	return rv.users[acct]
}

// blockingBackend is a store whose record swaps wait for their context,
// or fail at once with fail.
type blockingBackend struct {
	Backend
	fail error
}

func (b blockingBackend) SwapRecord(ctx context.Context, _ string, _, _ []byte) (bool, error) {
	if b.fail != nil {
		return false, b.fail
	}
	<-ctx.Done()
	return false, ctx.Err()
}

// TestCallRequestEnded: a store call that failed because its request
// ended leaves the store up; one the store failed marks it down.
func TestCallRequestEnded(t *testing.T) {
	rv := NewRealm(blockingBackend{}, Options{Now: time.Now, Logger: zap.NewNop()})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := rv.SwapRecord(ctx, "totp:ada", nil, []byte("x")); err == nil {
		t.Fatal("a swap of an ended request succeeded")
	}
	if rv.down.Load() {
		t.Error("a request that ended marked the store down")
	}
	rv = NewRealm(blockingBackend{fail: errors.New("disk full")}, Options{Now: time.Now, Logger: zap.NewNop()})
	if _, err := rv.SwapRecord(context.Background(), "totp:ada", nil, []byte("x")); err == nil || !rv.down.Load() {
		t.Errorf("a store error: %v, down %v", err, rv.down.Load())
	}
}
