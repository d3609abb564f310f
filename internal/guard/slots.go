package guard

import (
	"context"
	"errors"
	"runtime"
	"slices"
	"sync"
	"time"
)

// maxWaiting bounds the checks one lane may have waiting; a client past
// it is told to come back shortly, with no failure counted.
const maxWaiting = 32

// Slots bounds the password checks that run at once, so that a flood of
// logins from many addresses, each within its own limit, takes at most a
// share of the CPUs from the rest of the server.
//
// Checks wait in lanes: one per client address for anonymous logins, one
// per account for logins from its known devices. A lane runs one check at
// a time and holds one place in its queue, however many checks wait in
// it: a client's further attempts wait behind its own, and one account's
// devices cannot crowd out anyone else. A freed slot goes to the first
// lane of the known devices' queue, except that the anonymous queue gets
// at least every other slot while it waits, so neither queue starves the
// other.
type Slots struct {
	// wait is how long a check waits for a slot before it is refused.
	wait time.Duration

	mu   sync.Mutex
	free int
	// lanes holds the lanes with a check waiting or running, by key.
	lanes map[string]*lane
	// known and anonymous are the lanes ready for a slot (a check
	// waiting, none running), in the order they became ready.
	known, anonymous []*lane
	// lastKnown is whether the last slot went to a known lane.
	lastKnown bool
}

// lane is one client's or account's waiting checks, oldest first.
type lane struct {
	key     string
	known   bool
	waiting []chan struct{}
	// running is whether a check of the lane holds a slot.
	running bool
}

// ProcessSlots is the limit every handler of the process shares: half of
// the CPUs, and a login that waits 2s without a slot is refused.
var ProcessSlots = NewSlots(max(1, runtime.GOMAXPROCS(0)/2), 2*time.Second)

// NewSlots allows slots checks at once, each waiting up to wait.
func NewSlots(slots int, wait time.Duration) *Slots {
	return &Slots{free: slots, wait: wait, lanes: make(map[string]*lane)}
}

// Why Acquire refuses a check; neither is the client's failure.
var (
	// ErrNoSlot: no slot came free within the wait.
	ErrNoSlot = errors.New("no password check slot free")
	// ErrBusy: the lane has as many checks waiting as it may.
	ErrBusy = errors.New("too many logins from this client in progress")
)

// laneKey names the lane of a key in its queue.
func laneKey(key string, known bool) string {
	if known {
		return "known\x00" + key
	}
	return "anonymous\x00" + key
}

// Acquire waits for a slot in the lane of key (an account's for its
// known devices, a client's otherwise) up to the limit's wait for itself
// and for each check ahead of it in its lane, or the end of the request;
// give it back with Release.
func (l *Slots) Acquire(ctx context.Context, key string, known bool) error {
	l.mu.Lock()
	ln := l.lanes[laneKey(key, known)]
	if ln == nil {
		ln = &lane{key: key, known: known}
		l.lanes[laneKey(key, known)] = ln
	}
	if len(ln.waiting) >= maxWaiting {
		l.mu.Unlock()
		return ErrBusy
	}
	handed := make(chan struct{}, 1)
	ln.waiting = append(ln.waiting, handed)
	// a check behind others of its own lane waits for them too: the
	// wait runs once for each check ahead of it in the lane
	ahead := len(ln.waiting) - 1
	if ln.running {
		ahead++
	}
	if len(ln.waiting) == 1 && !ln.running {
		l.ready(ln)
	}
	l.dispatch()
	l.mu.Unlock()

	timer := time.NewTimer(l.wait * time.Duration(ahead+1))
	defer timer.Stop()
	select {
	case <-handed:
		return nil
	case <-timer.C:
	case <-ctx.Done():
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if i := slices.Index(ln.waiting, handed); i >= 0 {
		ln.waiting = slices.Delete(ln.waiting, i, i+1)
		if len(ln.waiting) == 0 && !ln.running {
			l.unready(ln)
			delete(l.lanes, laneKey(key, known))
		}
		return ErrNoSlot
	}
	// the slot was handed over as the wait ended: pass it on
	l.done(ln)
	return ErrNoSlot
}

// Release gives back the slot taken by Acquire in the lane of key.
func (l *Slots) Release(key string, known bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.done(l.lanes[laneKey(key, known)])
}

// done ends the lane's running check: the slot goes to the next lane,
// and the lane waits its turn again for its next check; l.mu is held.
func (l *Slots) done(ln *lane) {
	ln.running = false
	l.free++
	if len(ln.waiting) > 0 {
		l.ready(ln)
	} else {
		delete(l.lanes, laneKey(ln.key, ln.known))
	}
	l.dispatch()
}

// ready puts a lane at the back of its queue; l.mu is held.
func (l *Slots) ready(ln *lane) {
	if ln.known {
		l.known = append(l.known, ln)
	} else {
		l.anonymous = append(l.anonymous, ln)
	}
}

// unready takes a lane out of its queue; l.mu is held.
func (l *Slots) unready(ln *lane) {
	queue := &l.anonymous
	if ln.known {
		queue = &l.known
	}
	*queue = slices.DeleteFunc(*queue, func(o *lane) bool { return o == ln })
}

// dispatch hands the free slots to the first lanes of the queues, known
// devices first but anonymous at least every other time; l.mu is held.
func (l *Slots) dispatch() {
	for l.free > 0 {
		anonymous := len(l.anonymous) > 0 && (len(l.known) == 0 || l.lastKnown)
		queue := &l.known
		if anonymous {
			queue = &l.anonymous
		}
		if len(*queue) == 0 {
			return
		}
		ln := (*queue)[0]
		*queue = slices.Delete(*queue, 0, 1)
		next := ln.waiting[0]
		ln.waiting = slices.Delete(ln.waiting, 0, 1)
		ln.running = true
		l.free--
		l.lastKnown = !anonymous
		next <- struct{}{}
	}
}
