package store

import (
	"crypto/rand"
	"runtime"
	"testing"
	"time"
)

// indexEntry is a session of acct that started at start and lasts an hour.
func indexEntry(acct AccountID, start time.Time) Entry {
	return Entry{ID: [16]byte(random(16)), Account: acct, Counter: 1, Factors: 1, Started: start, Expires: start.Add(time.Hour),
		Address: "203.0.113.7", Device: "Firefox on Linux"}
}

// TestSessionIndexBound lists the newest 50 sessions of an account,
// newest first, and counts the rest without their details.
func TestSessionIndexBound(t *testing.T) {
	x := newSessionIndex()
	acct := AccountID(random(16))
	now := time.Now().Truncate(time.Second)
	var entries []Entry
	for i := range listedSessions + 5 {
		// logins arrive out of order, as they do from several nodes
		e := indexEntry(acct, now.Add(-time.Duration((i*7)%(listedSessions+5))*time.Second))
		entries = append(entries, e)
		x.add(e)
	}
	x.add(entries[0]) // read twice
	listed, others := x.list(nil, acct, [16]byte{}, now)
	if len(listed) != listedSessions || others != 5 {
		t.Fatalf("%d listed, %d others; want %d and 5", len(listed), others, listedSessions)
	}
	for i := 1; i < len(listed); i++ {
		if !listed[i].Started.Before(listed[i-1].Started) {
			t.Fatalf("session %d started %v, after the one before it (%v)", i, listed[i].Started, listed[i-1].Started)
		}
	}
	if listed[0].Started != now || listed[0].Device != "Firefox on Linux" {
		t.Errorf("newest listed: %+v", listed[0])
	}
	// a profile shown by an unlisted session lists it apart, not twice
	for id := range x.accounts[acct].others {
		if _, others := x.list(nil, acct, id, now); others != 4 {
			t.Errorf("others besides an unlisted session shown: %d, want 4", others)
		}
		break
	}
	for _, a := range x.accounts[acct].others {
		if a.Address != "" || a.Device != "" {
			t.Errorf("an unlisted session keeps its details: %+v", a)
		}
	}
	if listed, others := x.list(nil, AccountID(random(16)), [16]byte{}, now); len(listed) != 0 || others != 0 {
		t.Errorf("an account without sessions: %d listed, %d others", len(listed), others)
	}
	// past the count of others, the oldest leave the index
	for i := range otherSessions {
		x.add(indexEntry(acct, now.Add(time.Duration(i+1)*time.Second)))
	}
	if listed, others := x.list(nil, acct, [16]byte{}, now); len(listed) != listedSessions || others != otherSessions || len(x.owner) != listedSessions+otherSessions {
		t.Errorf("after %d more logins: %d listed, %d others, %d indexed", otherSessions, len(listed), others, len(x.owner))
	}
}

// TestSessionIndexRemoval drops a session at its logout, an account's
// older sessions at a sign out everywhere, and every session once its
// hour of expiry has passed, with nothing left in memory.
func TestSessionIndexRemoval(t *testing.T) {
	x := newSessionIndex()
	acct := AccountID(random(16))
	now := time.Now().Truncate(time.Second)
	first, second, third := indexEntry(acct, now.Add(-2*time.Second)), indexEntry(acct, now.Add(-time.Second)), indexEntry(acct, now)
	third.Counter = 2
	for _, e := range []Entry{first, second, third} {
		x.add(e)
	}
	if e, ok := x.find(second.ID); !ok || e != second {
		t.Fatalf("an indexed session found as %+v, %v", e, ok)
	}
	x.remove(second.ID)
	x.remove(second.ID) // a logout read twice
	if _, ok := x.find(second.ID); ok {
		t.Errorf("a session found after its logout")
	}
	if listed, _ := x.list(nil, acct, [16]byte{}, now); len(listed) != 2 {
		t.Fatalf("after a logout: %d listed, want 2", len(listed))
	}
	x.signedOut(acct, 2)
	if listed, _ := x.list(nil, acct, [16]byte{}, now); len(listed) != 1 || listed[0].ID != third.ID {
		t.Fatalf("after a sign out everywhere above the first: %+v, want the third alone", listed)
	}
	if listed, _ := x.list(nil, acct, [16]byte{}, third.Expires); len(listed) != 0 {
		t.Errorf("an expired session listed")
	}
	x.expire(third.Expires.Add(time.Hour))
	if len(x.accounts) != 0 || len(x.owner) != 0 || len(x.byHour) != 0 {
		t.Errorf("after expiry: %d accounts, %d sessions, %d hours kept", len(x.accounts), len(x.owner), len(x.byHour))
	}
}

// BenchmarkSessionIndexAdd measures a login's entry in the index, for
// accounts of 10 sessions each: its time, and as B/session the heap the
// index keeps per session (its strings are shared here, as device names
// mostly are).
func BenchmarkSessionIndexAdd(b *testing.B) {
	now := time.Now()
	entries := make([]Entry, b.N)
	for i := range entries {
		entries[i] = indexEntry(AccountID(random(16)), now.Add(time.Duration(i)*time.Millisecond))
		if i%10 != 0 {
			entries[i].Account = entries[i-i%10].Account
		}
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	b.ResetTimer()
	x := newSessionIndex()
	for i := range b.N {
		x.add(entries[i])
	}
	b.StopTimer()
	runtime.GC()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(b.N), "B/session")
	runtime.KeepAlive(x)
}

// random returns n random bytes.
func random(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}
