// Package guard owns what keeps logins fair and brute force slow: the
// failed-login counts per client (an address or a known device), the
// bounded queue of password checks in lanes (one per client, one per
// account's known devices) that take turns, and the keys clients are
// counted by. It takes client keys and times as values; it knows nothing
// of HTTP, accounts or sessions.
package guard

import (
	"context"
	"encoding/hex"
	"time"
)

// Guard is a realm's throttle in front of the process's password check
// slots.
type Guard struct {
	// Throttle counts the failed logins of each client.
	Throttle *Throttle
	// Slots bounds the password checks that run at once.
	Slots *Slots
}

// Login names whose login it is, for the guard: the key its failures
// are counted by and the lane it waits in.
type Login struct {
	// Client is the client's key (ClientKey of its address).
	Client string
	// Device is the key of its known device (DeviceKey), or empty.
	Device string
	// Account is the account a known device signs in to; its devices
	// share one lane.
	Account string
}

// throttleKey is what the login's failures are counted by: its known
// device, else its client.
func (in Login) throttleKey() string {
	if in.Device != "" {
		return in.Device
	}
	return in.Client
}

// lane is the lane the login waits in: its account's for a known
// device, else its client's.
func (in Login) lane() (string, bool) {
	if in.Device != "" {
		return in.Account, true
	}
	return in.Client, false
}

// Place is a login's place: its reserved attempt and a password check
// slot, held until Leave.
type Place struct {
	attempt *attempt
	slots   *Slots
	lane    string
	known   bool
}

// Enter gives a login its place: a client that used up its failures is
// refused at once with errLimited and how long to wait; otherwise the
// login waits in its lane for a password check slot (refused with
// ErrNoSlot or ErrBusy, neither counted as a failure), then reserves its
// attempt.
func (g Guard) Enter(ctx context.Context, in Login, now time.Time) (*Place, time.Duration, error) {
	key := in.throttleKey()
	if wait, limited := g.Throttle.limited(key, now); limited {
		return nil, wait, errLimited
	}
	lane, known := in.lane()
	if err := g.Slots.Acquire(ctx, lane, known); err != nil {
		return nil, time.Second, err
	}
	// the lane's check before this one may have used up the limit
	attempt, wait, err := g.Throttle.reserve(key, now)
	if err != nil {
		g.Slots.Release(lane, known)
		return nil, wait, err
	}
	return &Place{attempt: attempt, slots: g.Slots, lane: lane, known: known}, 0, nil
}

// EnterCheck gives a check that needs no password check slot (a
// second factor's code) its attempt under the same throttle as a login:
// a client that used up its failures is refused with how long to wait.
func (g Guard) EnterCheck(in Login, now time.Time) (*Place, time.Duration, error) {
	attempt, wait, err := g.Throttle.reserve(in.throttleKey(), now)
	if err != nil {
		return nil, wait, err
	}
	return &Place{attempt: attempt}, 0, nil
}

// Leave frees the slot, if the place holds one, and settles the
// attempt: a failure stays counted against the client.
func (p *Place) Leave(failed bool) {
	if p.slots != nil {
		p.slots.Release(p.lane, p.known)
	}
	p.attempt.done(failed)
}

// DeviceKey is the throttle key of a known device, by its ID.
func DeviceKey(id [16]byte) string {
	return "device:" + hex.EncodeToString(id[:])
}
