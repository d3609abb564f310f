package store

import (
	"testing"
	"time"

	"go.uber.org/zap"
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
	if !rv.Revoked(acct, ended.ID, ended.Expires, 1) || rv.Revoked(acct, live.ID, live.Expires, 1) {
		t.Fatal("the revocation is not in force, or another session is refused")
	}
	if n := rv.Revocations(); n != 1 {
		t.Fatalf("%d revocations held, want 1", n)
	}
	other := AccountID(random(16))
	if rv.raise(other, 2) != 2 || !rv.Revoked(other, live.ID, live.Expires, 1) || rv.Revoked(other, live.ID, live.Expires, 2) {
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
