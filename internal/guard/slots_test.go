package guard

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// waiting counts the checks waiting in every lane.
func (l *Slots) waiting() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, ln := range l.lanes {
		n += len(ln.waiting)
	}
	return n
}

// queued starts a check in the lane of key and waits until it waits
// there; the check reports its name when it gets a slot.
func queued(t *testing.T, l *Slots, order chan<- string, name, key string, known bool) {
	t.Helper()
	before := l.waiting()
	go func() {
		if err := l.Acquire(context.Background(), key, known); err != nil {
			order <- name + " refused"
			return
		}
		order <- name
	}()
	for l.waiting() != before+1 {
		time.Sleep(time.Millisecond)
	}
}

// handOut releases the slot held in the lane of holder, and then each
// check's own as it gets one, and returns the names in the order they
// got the slot.
func handOut(l *Slots, order chan string, n int, holder string, known bool, lanes map[string]string) []string {
	var got []string
	l.Release(holder, known)
	for range n {
		name := <-order
		got = append(got, name)
		key := lanes[name]
		l.Release(key, key[0] == 'k')
	}
	return got
}

// check is a password check of a test: its name, and the key and queue
// of its lane.
type check struct {
	name, key string
	known     bool
}

// queueBehindHolder takes the one slot of new Slots for "holder" and
// queues the checks behind it in order; it returns the slots, the
// channel the checks report on, and each check's lane key by name.
func queueBehindHolder(t *testing.T, checks []check) (*Slots, chan string, map[string]string) {
	t.Helper()
	l := NewSlots(1, 10*time.Second)
	if err := l.Acquire(context.Background(), "holder", false); err != nil {
		t.Fatal(err)
	}
	order := make(chan string, len(checks))
	lanes := map[string]string{}
	for _, c := range checks {
		queued(t, l, order, c.name, c.key, c.known)
		lanes[c.name] = c.key
	}
	return l, order, lanes
}

// TestSlotsAlternate: a freed slot goes to a known device's lane first,
// but the anonymous queue gets every other slot while it waits.
func TestSlotsAlternate(t *testing.T) {
	l, order, lanes := queueBehindHolder(t, []check{{"anonymous 1", "a1", false}, {"known 1", "k1", true}, {"anonymous 2", "a2", false},
		{"known 2", "k2", true}, {"known 3", "k3", true}})
	got := handOut(l, order, 5, "holder", false, lanes)
	want := []string{"known 1", "anonymous 1", "known 2", "anonymous 2", "known 3"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("slots went to %v, want %v", got, want)
	}
	if l.free != 1 || len(l.lanes) != 0 {
		t.Errorf("%d slots free and %d lanes after every check, want 1 and 0", l.free, len(l.lanes))
	}
}

// TestSlotsLanes: a lane holds one place in its queue however many
// checks wait in it, so one account's devices, or one address's many
// users, take turns with the others instead of going ahead of them.
func TestSlotsLanes(t *testing.T) {
	l, order, lanes := queueBehindHolder(t, []check{{"flood 1", "kx", true}, {"flood 2", "kx", true}, {"flood 3", "kx", true},
		{"office 1", "a1", false}, {"office 2", "a1", false}, {"home", "a2", false}})
	got := handOut(l, order, 6, "holder", false, lanes)
	want := []string{"flood 1", "office 1", "flood 2", "home", "flood 3", "office 2"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("slots went to %v, want %v", got, want)
	}
}

// TestSlotsTimeout refuses a check that waited too long, and a slot
// freed as the wait ends is not lost.
func TestSlotsTimeout(t *testing.T) {
	l := NewSlots(1, 20*time.Millisecond)
	_ = l.Acquire(context.Background(), "a", false)
	if err := l.Acquire(context.Background(), "k", true); err != ErrNoSlot {
		t.Fatalf("waited past the limit: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := l.Acquire(ctx, "b", false); err != ErrNoSlot {
		t.Fatalf("request ended: %v", err)
	}
	l.Release("a", false)
	if l.free != 1 || l.waiting() != 0 || len(l.lanes) != 0 || len(l.known)+len(l.anonymous) != 0 {
		t.Errorf("free %d, waiting %d, %d lanes", l.free, l.waiting(), len(l.lanes))
	}
}

// TestSlotsBusy refuses a check past the lane's bound at once.
func TestSlotsBusy(t *testing.T) {
	l := NewSlots(1, 10*time.Second)
	_ = l.Acquire(context.Background(), "a", false)
	order := make(chan string, maxWaiting+1)
	for i := range maxWaiting {
		queued(t, l, order, fmt.Sprint(i), "a", false)
	}
	if err := l.Acquire(context.Background(), "a", false); err != ErrBusy {
		t.Errorf("check %d of one lane: %v, want ErrBusy", maxWaiting+1, err)
	}
	if l.waiting() != maxWaiting {
		t.Errorf("%d checks waiting, want %d", l.waiting(), maxWaiting)
	}
}

// TestSlotsWaitBehindOwnLane: a check behind others of its own lane
// waits for each of them too, so ten logins from one address that take
// longer than one wait together all get their turn.
func TestSlotsWaitBehindOwnLane(t *testing.T) {
	l := NewSlots(1, 250*time.Millisecond)
	errs := make(chan error, 5)
	for range 5 {
		go func() {
			err := l.Acquire(context.Background(), "office", false)
			if err == nil {
				time.Sleep(150 * time.Millisecond) // a check: five take 750 ms, three waits
				l.Release("office", false)
			}
			errs <- err
		}()
	}
	for range 5 {
		if err := <-errs; err != nil {
			t.Errorf("a login behind its own address's: %v", err)
		}
	}
}
