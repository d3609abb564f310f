package store

import (
	"context"
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

// TestSignOutAtLimit: an account whose counter is at MaxCounter (a
// forged store value) is not silently left signed in: the sign-out
// reports false and logs why; below it, the counter rises by one.
func TestSignOutAtLimit(t *testing.T) {
	core, logs := observer.New(zap.DebugLevel)
	rv := NewRealm(nil, Options{Now: time.Now, Logger: zap.New(core)})
	acct := AccountID(random(16))
	rv.mu.Lock()
	rv.applyLocked(Change{Account: acct, Counter: MaxCounter})
	rv.applyLocked(Change{Account: AccountID{1}, Counter: MaxCounter + 1})
	rv.mu.Unlock()
	if signOuts(rv, AccountID{1}) != 0 {
		t.Error("a counter above MaxCounter taken in")
	}
	if rv.SignOutEverywhere(context.Background(), acct) || logs.FilterMessageSnippet("at its limit").Len() != 1 {
		t.Errorf("a sign-out at the limit reported done, or logged %d lines", logs.Len())
	}
	if signOuts(rv, acct) != MaxCounter {
		t.Errorf("the counter moved to %d", signOuts(rv, acct))
	}
}
