package store

import (
	"context"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
)

// The realm's answers and changes at request time: whether a session
// is revoked, its last use, the sign-out counters, the session index and
// the known devices. Each answers from memory and writes to the store
// through call, so an outage signs nobody out.

// Revoked reports whether the session id of the account, which expires
// then and began under the sign-out counter and the store's generation,
// was logged out here or on another instance (within the store's
// window), belongs to an account that signed out everywhere since it
// began, or to another generation than the store's. A session of
// generation 0 was issued while the store was out of reach since its node
// started: nothing tells whether the store lost its data since, so it is
// refused too once the generation is known.
func (rv *Realm) Revoked(acct AccountID, id [16]byte, expires time.Time, counter uint32, generation uint64) bool {
	rv.mu.RLock()
	_, revoked := rv.byHour[expires.Unix()/3600][id]
	current, now := rv.users[acct], rv.generation
	rv.mu.RUnlock()
	return revoked || counter < current || (now != 0 && generation != now)
}

// RevokedID reports whether the ID, which expires then, was revoked here
// or on another instance (within the store's window): a session logged
// out, or a one-time value used up.
func (rv *Realm) RevokedID(id [16]byte, expires time.Time) bool {
	rv.mu.RLock()
	defer rv.mu.RUnlock()
	_, revoked := rv.byHour[expires.Unix()/3600][id]
	return revoked
}

// LastUse is when the session id, which expires then, was last used
// without its cookie being renewed, here or on another instance; zero
// when never.
func (rv *Realm) LastUse(id [16]byte, expires time.Time) time.Time {
	rv.mu.RLock()
	used, ok := rv.used[expires.Unix()/3600][id]
	rv.mu.RUnlock()
	if !ok {
		return time.Time{}
	}
	return time.Unix(used, 0)
}

// KeepAlive records the session's use at now, when its cookie could not
// be renewed, once every period since its last use (the cookie's
// lastSeen, or a later one recorded): here at once, in the store with
// one write. Checks of one session at once write once.
func (rv *Realm) KeepAlive(ctx context.Context, id [16]byte, expires, lastSeen, now time.Time, period time.Duration) {
	rv.mu.Lock()
	last := max(lastSeen.Unix(), rv.used[expires.Unix()/3600][id])
	if now.Unix()-last < int64(period.Seconds()) {
		rv.mu.Unlock()
		return
	}
	rv.applyLocked(Change{ID: id, Expires: expires, Used: now})
	rv.mu.Unlock()
	rv.write(ctx, pendingWrite{id: id, expires: expires, used: now})
}

// Generation is the store's generation for a new session: 0 while it
// is not known.
func (rv *Realm) Generation() uint64 {
	rv.mu.RLock()
	defer rv.mu.RUnlock()
	return rv.generation
}

// Counter returns the account's current sign-out counter for a new
// session, read from the store so that a sign-out on another instance
// that this one has not seen yet does not end the new session when it is
// seen. When the store fails, memory answers.
func (rv *Realm) Counter(ctx context.Context, acct AccountID) uint32 {
	var stored uint32
	err := rv.call(ctx, func(ctx context.Context) (err error) {
		stored, err = rv.store.Counter(ctx, acct)
		return err
	})
	if err != nil {
		rv.logger.Warn("reading sign-out counter; using the one in memory", zap.Error(err))
	}
	return rv.raise(acct, stored)
}

// raise lifts the account's sign-out counter to counter when that is
// higher, and returns the account's counter.
func (rv *Realm) raise(acct AccountID, counter uint32) uint32 {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	rv.applyLocked(Change{Account: acct, Counter: counter})
	return rv.users[acct]
}

// Revoke ends the session id, which expires then. It takes effect here
// at once; the store write is retried until it succeeds.
func (rv *Realm) Revoke(ctx context.Context, id [16]byte, expires time.Time) {
	rv.mu.Lock()
	rv.applyLocked(Change{Revoked: true, ID: id, Expires: expires})
	rv.mu.Unlock()
	rv.write(ctx, pendingWrite{id: id, expires: expires})
}

// Login records a new session in its account's index: here at once, in
// the store with one write.
func (rv *Realm) Login(ctx context.Context, e Entry) {
	rv.mu.Lock()
	rv.applyLocked(Change{Login: &e})
	rv.mu.Unlock()
	rv.write(ctx, pendingWrite{login: &e})
}

// Sessions appends the account's live sessions to dst, newest first,
// and returns how many older ones it has besides the session shown
// (which may be the zero ID).
func (rv *Realm) Sessions(dst []Entry, acct AccountID, shown [16]byte) ([]Entry, int) {
	rv.mu.RLock()
	defer rv.mu.RUnlock()
	return rv.sessions.list(dst, acct, shown, rv.now())
}

// EndSession ends the indexed session id, if acct is nil or owns it, as
// a logout would, and returns it.
func (rv *Realm) EndSession(ctx context.Context, acct *AccountID, id [16]byte) (Entry, bool) {
	rv.mu.RLock()
	e, known := rv.sessions.find(id)
	rv.mu.RUnlock()
	if !known || (acct != nil && *acct != e.Account) {
		return Entry{}, false
	}
	rv.Revoke(ctx, id, e.Expires)
	return e, true
}

// SignOutEverywhere ends every session of the account issued so far, on
// every instance, by raising its sign-out counter above theirs: at once
// here, and in the store to at least the same value. It reports false,
// and logs why, when the counter is at MaxCounter and cannot be raised
// (a value only a forged store entry gives).
func (rv *Realm) SignOutEverywhere(ctx context.Context, acct AccountID) bool {
	rv.mu.Lock()
	if rv.users[acct] >= MaxCounter {
		rv.mu.Unlock()
		rv.logger.Error("the account's sign-out counter is at its limit and cannot be raised: its sessions were not ended (the store holds a forged counter)")
		return false
	}
	atLeast := rv.users[acct] + 1
	rv.applyLocked(Change{Account: acct, Counter: atLeast})
	rv.mu.Unlock()
	rv.write(ctx, pendingWrite{signOut: true, acct: acct, atLeast: atLeast})
	return true
}

// AddDevice records a browser that signed in to the account as one of
// its known devices until then; a store error is logged, and the browser
// is then not known on other nodes.
func (rv *Realm) AddDevice(ctx context.Context, acct AccountID, id [16]byte, until time.Time) {
	if err := rv.call(ctx, func(ctx context.Context) error { return rv.store.AddDevice(ctx, acct, id, until) }); err != nil {
		rv.logger.Warn("recording a known device", zap.Error(err))
	}
}

// KnownDevice reports whether the browser is among the account's newest
// known devices. When the store fails it is taken as known: its cookie
// is sealed and bound to the account, and an outage must not put
// returning users behind a flood.
func (rv *Realm) KnownDevice(ctx context.Context, acct AccountID, id [16]byte) bool {
	var known bool
	err := rv.call(ctx, func(ctx context.Context) (err error) {
		known, err = rv.store.HasDevice(ctx, acct, id)
		return err
	})
	if err != nil {
		rv.logger.Warn("reading known devices; taking the device cookie as known", zap.Error(err))
		return true
	}
	return known
}

// Revocations is how many revoked sessions the realm holds in memory.
func (rv *Realm) Revocations() int {
	rv.mu.RLock()
	defer rv.mu.RUnlock()
	n := 0
	for _, ids := range rv.byHour {
		n += len(ids)
	}
	return n
}

// Pending is how many writes wait for the store to take them.
func (rv *Realm) Pending() int {
	rv.mu.RLock()
	defer rv.mu.RUnlock()
	return len(rv.pending)
}

// write sends one write to the store, or keeps it pending when the
// store fails: a logout is never lost to a store error.
func (rv *Realm) write(ctx context.Context, w pendingWrite) {
	if err := rv.call(ctx, func(ctx context.Context) error { return rv.send(ctx, w) }); err != nil {
		rv.logger.Error("writing to the store; will retry", zap.Error(err))
		rv.mu.Lock()
		rv.pending = append(rv.pending, w)
		rv.mu.Unlock()
	}
}

// send makes one write.
func (rv *Realm) send(ctx context.Context, w pendingWrite) error {
	switch {
	case w.login != nil:
		return rv.store.Login(ctx, *w.login)
	case !w.used.IsZero():
		return rv.store.Use(ctx, w.id, w.expires, w.used)
	case !w.signOut:
		return rv.store.Revoke(ctx, w.id, w.expires)
	}
	n, err := rv.store.SignOut(ctx, w.acct, w.atLeast)
	if err == nil {
		rv.raise(w.acct, n)
	}
	return err
}

// retryPending sends the pending writes in order, keeping those that
// fail again.
func (rv *Realm) retryPending(ctx context.Context) error {
	return RetryInOrder(&rv.mu, &rv.pending, func(w pendingWrite) error { return rv.send(ctx, w) })
}

// Interface guard
var _ caddy.Destructor = (*Realm)(nil)
