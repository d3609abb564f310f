package store

import (
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// TestLoginReadAfterItsEnd: a login that the store's feed brings after
// its logout, or after a sign out everywhere above it (journals of
// several nodes are read in any order), is not listed.
func TestLoginReadAfterItsEnd(t *testing.T) {
	rv := NewRealm(nil, Options{Now: time.Now, Logger: zap.NewNop()})
	acct := AccountID(random(16))
	now := time.Now().Truncate(time.Second)
	loggedOut, signedOut, later := indexEntry(acct, now), indexEntry(acct, now), indexEntry(acct, now)
	later.Counter = 2
	rv.mu.Lock()
	rv.applyLocked(Change{Revoked: true, ID: loggedOut.ID, Expires: loggedOut.Expires})
	rv.applyLocked(Change{Login: &loggedOut})
	rv.applyLocked(Change{Account: acct, Counter: 2})
	rv.applyLocked(Change{Login: &signedOut})
	rv.applyLocked(Change{Login: &later})
	rv.mu.Unlock()
	if listed, others := rv.Sessions(nil, acct, [16]byte{}); len(listed) != 1 || listed[0] != later || others != 0 {
		t.Errorf("listed %+v and %d others; want the login after the sign-out alone", listed, others)
	}
}

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

// TestRealmGeneration: once the store reports a new generation, the
// sessions of the old one are refused and what was held of them goes;
// sessions of generation 0 (issued while the store was out of reach) and
// of the new one are not refused for it.
func TestRealmGeneration(t *testing.T) {
	core, logs := observer.New(zap.DebugLevel)
	rv := NewRealm(nil, Options{Now: time.Now, Logger: zap.New(core)})
	acct := AccountID(random(16))
	old := indexEntry(acct, time.Now().Truncate(time.Second))
	rv.mu.Lock()
	rv.applyLocked(Change{Generation: 7})
	rv.applyLocked(Change{Login: &old})
	rv.applyLocked(Change{Revoked: true, ID: [16]byte{1}, Expires: old.Expires})
	rv.mu.Unlock()
	if rv.Generation() != 7 || rv.Revoked(acct, old.ID, old.Expires, 1, 7) || logs.Len() != 0 {
		t.Fatalf("the first generation reported: %d, or a session of it refused, or %d lines logged", rv.Generation(), logs.Len())
	}
	rv.mu.Lock()
	rv.applyLocked(Change{Generation: 7})
	rv.applyLocked(Change{Generation: 9})
	rv.mu.Unlock()
	if !rv.Revoked(acct, old.ID, old.Expires, 1, 7) {
		t.Error("a session of the lost generation accepted")
	}
	if rv.Revoked(acct, old.ID, old.Expires, 1, 9) || rv.Revoked(acct, old.ID, old.Expires, 1, 0) {
		t.Error("a session of the new generation, or of none, refused")
	}
	if listed, _ := rv.Sessions(nil, acct, [16]byte{}); len(listed) != 0 || rv.Revocations() != 0 {
		t.Errorf("the lost generation's sessions (%d) or revocations (%d) kept", len(listed), rv.Revocations())
	}
	if logs.FilterMessageSnippet("lost the realm's data").Len() != 1 {
		t.Errorf("%d lines logged for the loss, want 1", logs.Len())
	}
}
