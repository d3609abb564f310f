package guard

import (
	"context"
	"errors"
	"runtime"
	"slices"
	"sync"
	"time"
)

// Slots bounds the password checks that run at once, so that a
// flood of logins from many addresses, each within its own limit, takes
// at most a share of the CPUs from the rest of the server. Checks wait
// for a free slot in two first-come, first-served queues: logins from a
// known device (a device cookie for the user) go ahead of anonymous ones.
type Slots struct {
	// wait is how long a check waits for a slot before it is refused.
	wait time.Duration

	mu   sync.Mutex
	free int
	// known and anonymous are the waiting checks, oldest first; a slot
	// freed is handed to the first of known, else of anonymous.
	known, anonymous []chan struct{}
}

// ProcessSlots is the limit every handler of the process shares:
// half of the CPUs, and a login that waits 2s without a slot is refused.
var ProcessSlots = NewSlots(max(1, runtime.GOMAXPROCS(0)/2), 2*time.Second)

// NewSlots allows slots checks at once, each waiting up to wait.
func NewSlots(slots int, wait time.Duration) *Slots {
	return &Slots{free: slots, wait: wait}
}

// ErrNoSlot is the refusal of a check that found no free slot in time.
var ErrNoSlot = errors.New("no password check slot free")

// Acquire waits for a slot, in the known devices' queue or the anonymous
// one, up to the limit's wait or the end of the request; release it
// with Release.
func (l *Slots) Acquire(ctx context.Context, known bool) error {
	l.mu.Lock()
	if l.free > 0 && (known || len(l.known) == 0) {
		l.free--
		l.mu.Unlock()
		return nil
	}
	handed := make(chan struct{}, 1)
	queue := &l.anonymous
	if known {
		queue = &l.known
	}
	*queue = append(*queue, handed)
	l.mu.Unlock()

	timer := time.NewTimer(l.wait)
	defer timer.Stop()
	select {
	case <-handed:
		return nil
	case <-timer.C:
	case <-ctx.Done():
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if i := slices.Index(*queue, handed); i >= 0 {
		*queue = slices.Delete(*queue, i, i+1)
		return ErrNoSlot
	}
	// the slot was handed over as the wait ended: pass it on
	l.handOn()
	return ErrNoSlot
}

// Release frees the slot taken by Acquire.
func (l *Slots) Release() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.handOn()
}

// handOn gives a freed slot to the first waiting check, or keeps it.
func (l *Slots) handOn() {
	for _, queue := range []*[]chan struct{}{&l.known, &l.anonymous} {
		if len(*queue) > 0 {
			next := (*queue)[0]
			*queue = slices.Delete(*queue, 0, 1)
			next <- struct{}{}
			return
		}
	}
	l.free++
}
