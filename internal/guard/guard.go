// Package guard owns what keeps logins fair and brute force slow: the
// failed-login counts per client (an address or a known device), the
// bounded queue of password checks, in which known devices go first,
// and the keys clients are counted by. It takes client keys and times
// as values; it knows nothing of HTTP, accounts or sessions.
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

// Place is a login's place: its reserved attempt and a password check
// slot, held until Leave.
type Place struct {
	attempt *Attempt
	slots   *Slots
}

// Enter reserves an attempt for the client key and waits for a password
// check slot, in the known devices' queue when known. A refusal is
// ErrLimited or ErrInFlight with how long to wait, or ErrNoSlot, which
// counts against the client like a failure.
func (g Guard) Enter(ctx context.Context, key string, known bool, now time.Time) (*Place, time.Duration, error) {
	attempt, wait, err := g.Throttle.Reserve(key, now)
	if err != nil {
		return nil, wait, err
	}
	if err := g.Slots.Acquire(ctx, known); err != nil {
		attempt.Done(true)
		return nil, time.Second, err
	}
	return &Place{attempt: attempt, slots: g.Slots}, 0, nil
}

// Leave frees the slot and settles the attempt: a failure stays
// counted against the client.
func (p *Place) Leave(failed bool) {
	p.slots.Release()
	p.attempt.Done(failed)
}

// DeviceKey is the throttle key of a known device, by its ID.
func DeviceKey(id [16]byte) string {
	return "device:" + hex.EncodeToString(id[:])
}
