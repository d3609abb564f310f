package guard

import (
	"context"
	"testing"
	"time"
)

// TestEnter: a place holds a slot and an attempt; a refusal for want of
// a slot is charged to the client like a failure.
func TestEnter(t *testing.T) {
	g := Guard{Throttle: newThrottle(1, time.Minute, throttleClients), Slots: NewSlots(1, 20*time.Millisecond)}
	now := time.Unix(1000, 0)
	p, _, err := g.Enter(context.Background(), "198.51.100.1", false, now)
	if err != nil {
		t.Fatal(err)
	}
	if _, wait, err := g.Enter(context.Background(), "198.51.100.2", false, now); err != ErrNoSlot || wait != time.Second {
		t.Fatalf("with the one slot taken: %v %v", wait, err)
	}
	p.Leave(false)
	if _, _, err := g.Enter(context.Background(), "198.51.100.2", false, now); err != ErrLimited {
		t.Errorf("after a refusal for want of a slot: %v, want the limit", err)
	}
	p, _, err = g.Enter(context.Background(), "198.51.100.1", false, now)
	if err != nil {
		t.Fatalf("a success was charged: %v", err)
	}
	p.Leave(true)
	if _, _, err := g.Enter(context.Background(), "198.51.100.1", false, now); err != ErrLimited {
		t.Errorf("a failure was not charged: %v", err)
	}
	if DeviceKey([16]byte{1}) != "device:01000000000000000000000000000000" {
		t.Errorf("device key %q", DeviceKey([16]byte{1}))
	}
}
