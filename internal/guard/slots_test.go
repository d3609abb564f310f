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
