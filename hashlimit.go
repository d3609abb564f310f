package miniapp

import (
	"context"
	"errors"
	"runtime"
	"time"
)

// hashLimit bounds the password checks that run at once, so that a
// flood of logins from many addresses, each within its own limit, takes
// at most a share of the CPUs from the rest of the server.
type hashLimit struct {
	slots chan struct{}
	// wait is how long a check waits for a free slot before it is
	// refused.
	wait time.Duration
}

// processHashLimit is the limit every handler of the process shares:
// half of the CPUs, and a login that waits 2s without a slot is refused.
var processHashLimit = newHashLimit(max(1, runtime.GOMAXPROCS(0)/2), 2*time.Second)

// newHashLimit allows slots checks at once, each waiting up to wait.
func newHashLimit(slots int, wait time.Duration) *hashLimit {
	return &hashLimit{slots: make(chan struct{}, slots), wait: wait}
}

// errNoSlot is the refusal of a check that found no free slot in time.
var errNoSlot = errors.New("no password check slot free")

// acquire waits for a slot, up to the limit's wait or the end of the
// request; release it with release.
func (l *hashLimit) acquire(ctx context.Context) error {
	select {
	case l.slots <- struct{}{}:
		return nil
	default:
	}
	timer := time.NewTimer(l.wait)
	defer timer.Stop()
	select {
	case l.slots <- struct{}{}:
		return nil
	case <-timer.C:
	case <-ctx.Done():
	}
	return errNoSlot
}

// release frees the slot taken by acquire.
func (l *hashLimit) release() { <-l.slots }
