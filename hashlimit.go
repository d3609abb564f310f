package miniapp

import (
	"context"
	"errors"
	"runtime"
	"slices"
	"sync"
	"time"
)

// hashLimit bounds the password checks that run at once, so that a
// flood of logins from many addresses, each within its own limit, takes
// at most a share of the CPUs from the rest of the server. Checks wait
// for a free slot in two first-come, first-served queues: logins from a
// known device (a device cookie for the user) go ahead of anonymous ones.
type hashLimit struct {
	// wait is how long a check waits for a slot before it is refused.
	wait time.Duration

	mu   sync.Mutex
	free int
	// known and anonymous are the waiting checks, oldest first; a slot
	// freed is handed to the first of known, else of anonymous.
	known, anonymous []chan struct{}
}

// processHashLimit is the limit every handler of the process shares:
// half of the CPUs, and a login that waits 2s without a slot is refused.
var processHashLimit = newHashLimit(max(1, runtime.GOMAXPROCS(0)/2), 2*time.Second)

// newHashLimit allows slots checks at once, each waiting up to wait.
func newHashLimit(slots int, wait time.Duration) *hashLimit {
	return &hashLimit{free: slots, wait: wait}
}

// errNoSlot is the refusal of a check that found no free slot in time.
var errNoSlot = errors.New("no password check slot free")

// acquire waits for a slot, in the known devices' queue or the anonymous
// one, up to the limit's wait or the end of the request; release it
// with release.
func (l *hashLimit) acquire(ctx context.Context, known bool) error {
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
		return errNoSlot
	}
	// the slot was handed over as the wait ended: pass it on
	l.handOn()
	return errNoSlot
}

// release frees the slot taken by acquire.
func (l *hashLimit) release() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.handOn()
}

// handOn gives a freed slot to the first waiting check, or keeps it.
func (l *hashLimit) handOn() {
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
