package session

import (
	"testing"
	"time"
)

// TestLiveAtTheBoundary: the cookie keeps whole seconds, so a session
// issued late in a second still lives its whole idle window and
// lifetime, and ends within a second after them.
func TestLiveAtTheBoundary(t *testing.T) {
	const lifetime, idle = 10 * time.Second, 2 * time.Second
	login := time.Unix(1000, 900_000_000) // 0.9 s into a second
	s := New("ada", [8]byte{}, 0, login, lifetime)
	for _, tc := range []struct {
		after time.Duration
		live  bool
	}{
		{1300 * time.Millisecond, true},       // used 1.3 s after login: within idle 2s
		{idle - time.Millisecond, true},       // the last instant of the idle window
		{idle + 1100*time.Millisecond, false}, // past it by more than the cookie's resolution
		{3*time.Second + time.Millisecond, false} /* past idle */} {
		if got := s.Live(login.Add(tc.after), lifetime, idle); got != tc.live {
			t.Errorf("%v after login: live %v, want %v", tc.after, got, tc.live)
		}
	}
	// kept in use, it lives its whole lifetime and no more than a second past it
	for _, tc := range []struct {
		after time.Duration
		live  bool
	}{{lifetime - time.Millisecond, true}, {lifetime, true}, {lifetime + 1100*time.Millisecond, false}} {
		now := login.Add(tc.after)
		used := *s
		used.LastSeen = now.Truncate(time.Second)
		if got := used.Live(now, lifetime, idle); got != tc.live {
			t.Errorf("%v after login, in use: live %v, want %v", tc.after, got, tc.live)
		}
	}
	// a lifetime lowered since the session was issued applies to it
	if s.Live(login.Add(3*time.Second), time.Second, time.Hour) {
		t.Error("a lowered lifetime not applied")
	}
}

func TestRenewed(t *testing.T) {
	login := time.Unix(1000, 0)
	s := New("ada", [8]byte{}, 0, login, time.Hour)
	if s.Renewed(login.Add(29*time.Minute), time.Hour) != nil {
		t.Error("renewed with more than half of the idle window left")
	}
	r := s.Renewed(login.Add(31*time.Minute), time.Hour)
	if r == nil || !r.LastSeen.Equal(login.Add(31*time.Minute)) || !r.Expires.Equal(s.Expires) || r.ID != s.ID {
		t.Errorf("renewal: %+v", r)
	}
}

func TestMaxAge(t *testing.T) {
	login := time.Unix(1000, 900_000_000)
	s := New("ada", [8]byte{}, 0, login, time.Hour)
	// 0.9 s into a second, the browser keeps the cookie a whole hour
	if got := s.MaxAge(login); got != 3600 {
		t.Errorf("Max-Age %d, want 3600", got)
	}
	if got := s.MaxAge(s.Expires.Add(-1500 * time.Millisecond)); got != 2 {
		t.Errorf("Max-Age %d 1.5 s before expiry, want 2", got)
	}
	if New("ada", [8]byte{}, 0, login, time.Hour).ID == s.ID {
		t.Error("two sessions share an ID")
	}
}

// TestLiveFractional: windows of a fraction of a second more are never
// cut short by the cookie's whole seconds.
func TestLiveFractional(t *testing.T) {
	login := time.Unix(1000, 900_000_000)
	s := New("ada", [8]byte{}, 0, login, 2500*time.Millisecond)
	if !s.Live(login.Add(1400*time.Millisecond), time.Hour, 1500*time.Millisecond) {
		t.Error("refused 1.4 s after login with idle_timeout 1.5s")
	}
	if !s.Live(login.Add(2400*time.Millisecond), 2500*time.Millisecond, time.Hour) {
		t.Error("refused 2.4 s after login with session_lifetime 2.5s")
	}
	if s.Live(login.Add(4200*time.Millisecond), 2500*time.Millisecond, time.Hour) {
		t.Error("accepted 4.2 s after login with session_lifetime 2.5s")
	}
}
