package guard

import (
	"context"
	"testing"
	"time"
)

// TestSlotsKnownFirst hands a freed slot to a known device's check
// before anonymous checks that queued earlier, and each queue in order.
func TestSlotsKnownFirst(t *testing.T) {
	l := NewSlots(1, 10*time.Second)
	if err := l.Acquire(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	order := make(chan string, 3)
	queue := func(name string, known bool, ahead int) {
		go func() {
			if err := l.Acquire(context.Background(), known); err != nil {
				order <- name + " refused"
				return
			}
			order <- name
		}()
		for {
			l.mu.Lock()
			n := len(l.known) + len(l.anonymous)
			l.mu.Unlock()
			if n == ahead+1 {
				return
			}
			time.Sleep(time.Millisecond)
		}
	}
	queue("anonymous 1", false, 0)
	queue("anonymous 2", false, 1)
	queue("known", true, 2)
	for _, want := range []string{"known", "anonymous 1", "anonymous 2"} {
		l.Release()
		if got := <-order; got != want {
			t.Fatalf("slot went to %s, want %s", got, want)
		}
	}
	l.Release()
	if l.free != 1 {
		t.Errorf("%d slots free after every check, want 1", l.free)
	}
}

// TestSlotsTimeout refuses a check that waited too long, and a slot
// freed as the wait ends is not lost.
func TestSlotsTimeout(t *testing.T) {
	l := NewSlots(1, 20*time.Millisecond)
	_ = l.Acquire(context.Background(), false)
	if err := l.Acquire(context.Background(), true); err != ErrNoSlot {
		t.Fatalf("waited past the limit: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := l.Acquire(ctx, false); err != ErrNoSlot {
		t.Fatalf("request ended: %v", err)
	}
	l.Release()
	if l.free != 1 || len(l.known)+len(l.anonymous) != 0 {
		t.Errorf("free %d, waiting %d", l.free, len(l.known)+len(l.anonymous))
	}
}

// TestEnter: a place holds a slot and an attempt; a refusal for want of
// a slot is charged to the client like a failure.
func TestEnter(t *testing.T) {
	g := Guard{Throttle: NewThrottle(1, time.Minute, MaxClients), Slots: NewSlots(1, 20*time.Millisecond)}
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
