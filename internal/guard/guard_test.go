package guard

import (
	"context"
	"testing"
	"time"
)

// TestEnter: a place holds a slot and an attempt; a failure is charged
// to the client, a refusal for want of a slot is not, and a client that
// used up its failures is refused before it waits.
func TestEnter(t *testing.T) {
	g := Guard{Throttle: newThrottle(1, time.Minute, throttleClients), Slots: NewSlots(1, 20*time.Millisecond)}
	now := time.Unix(1000, 0)
	one, two := Login{Client: "198.51.100.1"}, Login{Client: "198.51.100.2"}
	p, _, err := g.Enter(context.Background(), one, now)
	if err != nil {
		t.Fatal(err)
	}
	if _, wait, err := g.Enter(context.Background(), two, now); err != ErrNoSlot || wait != time.Second {
		t.Fatalf("with the one slot taken: %v %v", wait, err)
	}
	p.Leave(false)
	p, _, err = g.Enter(context.Background(), two, now)
	if err != nil {
		t.Fatalf("a refusal for want of a slot was charged: %v", err)
	}
	p.Leave(true)
	if _, wait, err := g.Enter(context.Background(), two, now); err != errLimited || wait != time.Minute {
		t.Errorf("a failure was not charged: %v %v", wait, err)
	}
	// a known device is counted apart from its address, in its account's lane
	device := Login{Client: "198.51.100.2", Device: DeviceKey([16]byte{1}), Account: "ada"}
	if p, _, err := g.Enter(context.Background(), device, now); err != nil {
		t.Errorf("a known device behind a limited address: %v", err)
	} else {
		p.Leave(false)
	}
	if DeviceKey([16]byte{1}) != "device:01000000000000000000000000000000" {
		t.Errorf("device key %q", DeviceKey([16]byte{1}))
	}
}

// TestEnterCheck: a check without a password (a second factor's code)
// takes no slot, and its failures count under the same limit as the
// client's failed logins.
func TestEnterCheck(t *testing.T) {
	g := Guard{Throttle: newThrottle(2, time.Minute, throttleClients), Slots: NewSlots(1, 20*time.Millisecond)}
	now := time.Unix(1000, 0)
	client := Login{Client: "198.51.100.1"}
	held, _, err := g.Enter(context.Background(), Login{Client: "198.51.100.9"}, now)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Leave(false)
	p, _, err := g.EnterCheck(client, now)
	if err != nil {
		t.Fatalf("a code check waited for the one slot, held: %v", err)
	}
	p.Leave(true)
	p, _, err = g.EnterCheck(client, now)
	if err != nil {
		t.Fatal(err)
	}
	p.Leave(true)
	if _, wait, err := g.EnterCheck(client, now); err != errLimited || wait != time.Minute {
		t.Errorf("after two failed codes: %v %v", wait, err)
	}
	if _, _, err := g.Enter(context.Background(), client, now); err != errLimited {
		t.Errorf("a login after two failed codes: %v", err)
	}
}
