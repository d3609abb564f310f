package passkey

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"testing"
)

// TestFitSessions: the sessions that expire first go, across passkeys,
// until the JSON fits; the newest stay; passkeys too large without any
// session are refused.
func TestFitSessions(t *testing.T) {
	keys := make([]Key, 3)
	for i := range keys {
		keys[i].ID = bytes.Repeat([]byte{byte(i + 1)}, 200)
		for n := range 40 {
			keys[i].Sessions = append(keys[i].Sessions, Session{ID: [16]byte{byte(i), byte(n)}, Expires: int64(1000 + n*3 + i)})
		}
	}
	full, _ := json.Marshal(keys)
	limit := len(full) - 1000
	forgotten, err := FitSessions(keys, limit)
	forgot := len(forgotten)
	after, _ := json.Marshal(keys)
	if err != nil || forgot == 0 || len(after) > limit {
		t.Fatalf("forgot %d, %d bytes for a limit of %d: %v", forgot, len(after), limit, err)
	}
	for _, s := range forgotten {
		if s.Expires > 1000+int64(forgot)*3 {
			t.Errorf("forgot a session that expires at %d, newer than those kept", s.Expires)
		}
	}
	var kept []int64
	for _, k := range keys {
		for _, s := range k.Sessions {
			kept = append(kept, s.Expires)
		}
	}
	slices.Sort(kept)
	if kept[len(kept)-1] != 1000+39*3+2 || kept[0] <= 1000 || len(kept) != 120-forgot {
		t.Errorf("kept %d sessions from %d to %d", len(kept), kept[0], kept[len(kept)-1])
	}
	for _, k := range keys {
		if k.Sessions[0].Expires < kept[0] {
			t.Errorf("a passkey kept a session older than the oldest kept")
		}
	}
	if _, err := FitSessions(keys, 500); !errors.Is(err, ErrFull) {
		t.Errorf("passkeys larger than the limit without sessions: %v", err)
	}
}

// TestStartedReturnsDropped: past the cap the oldest live sessions are
// returned for the caller to end; expired ones just go.
func TestStartedReturnsDropped(t *testing.T) {
	var k Key
	for n := range maxPasskeySessions {
		if dropped := k.Started([16]byte{byte(n)}, int64(100+n), 10); dropped != nil {
			t.Fatalf("dropped %v below the cap", dropped)
		}
	}
	dropped := k.Started([16]byte{0xff}, 500, 10)
	if len(dropped) != 1 || dropped[0].ID != [16]byte{0} || len(k.Sessions) != maxPasskeySessions {
		t.Errorf("past the cap: dropped %v, kept %d", dropped, len(k.Sessions))
	}
	if dropped := k.Started([16]byte{0xfe}, 600, 200); dropped != nil || len(k.Sessions) != 2 {
		t.Errorf("expired sessions: dropped %v, kept %d", dropped, len(k.Sessions))
	}
}
