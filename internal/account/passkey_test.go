package account

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
	keys := make([]Passkey, 3)
	for i := range keys {
		keys[i].ID = bytes.Repeat([]byte{byte(i + 1)}, 200)
		for n := range 40 {
			keys[i].Sessions = append(keys[i].Sessions, PasskeySession{ID: [16]byte{byte(i), byte(n)}, Expires: int64(1000 + n*3 + i)})
		}
	}
	full, _ := json.Marshal(keys)
	limit := len(full) - 1000
	forgot, err := FitSessions(keys, limit)
	after, _ := json.Marshal(keys)
	if err != nil || forgot == 0 || len(after) > limit {
		t.Fatalf("forgot %d, %d bytes for a limit of %d: %v", forgot, len(after), limit, err)
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
	if _, err := FitSessions(keys, 500); !errors.Is(err, ErrPasskeysFull) {
		t.Errorf("passkeys larger than the limit without sessions: %v", err)
	}
}
