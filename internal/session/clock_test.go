package session

import (
	"testing"
	"time"
)

// TestClock follows the system clock, moved by its own offset only: two
// clocks do not move each other.
func TestClock(t *testing.T) {
	var a, b Clock
	a.Advance(time.Hour)
	before := time.Now()
	gotA, gotB := a.Now(), b.Now()
	after := time.Now()
	if gotA.Before(before.Add(time.Hour)) || gotA.After(after.Add(time.Hour)) {
		t.Errorf("moved clock: %v, want an hour after %v", gotA, before)
	}
	if gotB.Before(before) || gotB.After(after) {
		t.Errorf("other clock: %v, want %v", gotB, before)
	}
}
