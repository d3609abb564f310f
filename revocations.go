package miniapp

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
)

// revocationPool shares one revocations per store, realm and sync
// interval across config reloads, so a reload neither rereads the store
// nor drops a pending write.
var revocationPool = caddy.NewUsagePool()

// joinTimeout bounds the first read of a store when a realm's list is
// made; what it could not read comes with the next changes.
const joinTimeout = 10 * time.Second

// leftWrites holds, by store and realm, the writes a list still had
// pending when it was destroyed (a reload changed its pool key during an
// outage), for the list that replaces it to send.
var leftWrites = struct {
	sync.Mutex
	byPlace map[string][]storeWrite
}{byPlace: make(map[string][]storeWrite)}

// revocations holds a realm's revoked sessions (until the session would
// have expired) and each account's sign-out counter. Memory answers
// every request; the store keeps them across restarts and shares them
// with the other instances, whose changes a loop reads as they come.
type revocations struct {
	store   backend
	clock   *clock
	logger  *zap.Logger
	poolKey string
	// place names the store and realm, for leftWrites
	place string
	// syncMu makes one sync at a time: the loop's, or a test's
	syncMu sync.Mutex

	mu sync.RWMutex
	// byHour holds the revoked session IDs by the hour their session
	// expires: a check looks in one map, and an hour that has passed is
	// dropped whole, without a scan of the others.
	byHour map[int64]map[[16]byte]struct{}
	users  map[accountID]uint32
	// sessions is each account's index of sessions.
	sessions *sessionIndex
	// pending holds the store writes that failed, retried in order.
	pending []storeWrite

	cancel context.CancelFunc
	done   chan struct{}
}

// storeWrite is a login, a revocation or a sign-out waiting for the
// store.
type storeWrite struct {
	login   *sessionEntry
	signOut bool
	id      [16]byte
	expires time.Time
	acct    accountID
	atLeast uint32
}

// openRevocations returns the realm's shared list in the store, reading
// it and starting its loop on first use.
func openRevocations(ctx caddy.Context, st storeModule, opts storeOptions) (*revocations, error) {
	place := st.place() + "\x00" + opts.realm
	key := fmt.Sprintf("%s\x00%s\x00%s", place, opts.every, opts.remember)
	val, _, err := revocationPool.LoadOrNew(key, func() (caddy.Destructor, error) {
		store, err := st.open(ctx, opts)
		if err != nil {
			return nil, err
		}
		loopCtx, cancel := context.WithCancel(context.Background())
		rv := newRevocations(store, opts)
		rv.poolKey, rv.place, rv.cancel = key, place, cancel
		joinCtx, stop := context.WithTimeout(ctx, joinTimeout)
		defer stop()
		if err := rv.sync(joinCtx); err != nil {
			// what the store holds is read again by the loop
			rv.logger.Error("reading revocations from the store", zap.Error(err))
		}
		go rv.loop(loopCtx)
		return rv, nil
	})
	if err != nil {
		return nil, err
	}
	return val.(*revocations), nil
}

// newRevocations makes an empty list on the store.
func newRevocations(store backend, opts storeOptions) *revocations {
	return &revocations{
		store:    store,
		clock:    opts.clock,
		logger:   opts.logger,
		byHour:   make(map[int64]map[[16]byte]struct{}),
		users:    make(map[accountID]uint32),
		sessions: newSessionIndex(),
		done:     make(chan struct{}),
	}
}

// release gives back this handler's use of the shared list.
func (rv *revocations) release() error {
	_, err := revocationPool.Delete(rv.poolKey)
	return err
}

// Destruct stops the loop and closes the store once no handler uses
// the list; writes still pending are left for the list that follows.
func (rv *revocations) Destruct() error {
	rv.cancel()
	<-rv.done
	rv.mu.Lock()
	pending := rv.pending
	rv.mu.Unlock()
	if len(pending) > 0 {
		leftWrites.Lock()
		leftWrites.byPlace[rv.place] = append(leftWrites.byPlace[rv.place], pending...)
		leftWrites.Unlock()
	}
	return rv.store.close()
}

// loop keeps memory up to date with the store until Destruct.
func (rv *revocations) loop(ctx context.Context) {
	defer close(rv.done)
	// the join has just synced
	for sleep(ctx, rv.store.pollEvery()) {
		if err := rv.sync(ctx); err != nil && ctx.Err() == nil {
			rv.logger.Error("syncing revocations with the store", zap.Error(err))
			if !sleep(ctx, time.Second) {
				return
			}
		}
	}
}

// sleep waits for d or the end of ctx, and reports whether ctx lives.
func sleep(ctx context.Context, d time.Duration) bool {
	if d > 0 {
		timer := time.NewTimer(d)
		defer timer.Stop()
		select {
		case <-timer.C:
		case <-ctx.Done():
		}
	}
	return ctx.Err() == nil
}

// sync retries the pending writes, applies what changed in the store and
// drops the revocations whose hour has passed.
func (rv *revocations) sync(ctx context.Context) error {
	rv.syncMu.Lock()
	defer rv.syncMu.Unlock()
	leftWrites.Lock()
	left := leftWrites.byPlace[rv.place]
	delete(leftWrites.byPlace, rv.place)
	leftWrites.Unlock()
	rv.mu.Lock()
	rv.pending = append(rv.pending, left...)
	for _, w := range left {
		rv.applyLocked(change{login: w.login, revoked: w.login == nil && !w.signOut, id: w.id, expires: w.expires})
	}
	rv.mu.Unlock()
	rv.retryPending(ctx)
	changes, err := rv.store.changes(ctx)
	rv.mu.Lock()
	defer rv.mu.Unlock()
	for _, c := range changes {
		rv.applyLocked(c)
	}
	now := rv.clock.now()
	for hour := range rv.byHour {
		if hour < now.Unix()/3600 {
			delete(rv.byHour, hour)
		}
	}
	rv.sessions.expire(now)
	return err
}

// applyLocked takes in one change, from the store or made here; rv.mu
// is held.
func (rv *revocations) applyLocked(c change) {
	switch {
	case c.login != nil:
		// a login read after its logout or sign-out is not indexed
		if _, revoked := rv.byHour[c.login.expires.Unix()/3600][c.login.id]; !revoked && c.login.counter >= rv.users[c.login.acct] {
			rv.sessions.add(*c.login)
		}
	case c.revoked:
		hour := c.expires.Unix() / 3600
		ids := rv.byHour[hour]
		if ids == nil {
			ids = make(map[[16]byte]struct{})
			rv.byHour[hour] = ids
		}
		ids[c.id] = struct{}{}
		rv.sessions.remove(c.id)
	case c.counter > rv.users[c.acct]:
		rv.users[c.acct] = c.counter
		rv.sessions.signedOut(c.acct, c.counter)
	}
}

// has reports whether s was logged out, here or on another instance
// (within the store's window), or belongs to an account that signed out
// everywhere since it began.
func (rv *revocations) has(acct accountID, s *session) bool {
	rv.mu.RLock()
	_, revoked := rv.byHour[s.Expires.Unix()/3600][s.ID]
	counter := rv.users[acct]
	rv.mu.RUnlock()
	return revoked || s.Counter < counter
}

// counter returns the account's current sign-out counter for a new
// session, read from the store so that a sign-out on another instance
// that this one has not seen yet does not end the new session when it is
// seen. When the store fails, memory answers.
func (rv *revocations) counter(ctx context.Context, acct accountID) uint32 {
	stored, err := rv.store.counter(ctx, acct)
	if err != nil {
		rv.logger.Warn("reading sign-out counter; using the one in memory", zap.Error(err))
	}
	return rv.raise(acct, stored)
}

// raise lifts the account's sign-out counter to counter when that is
// higher, and returns the account's counter.
func (rv *revocations) raise(acct accountID, counter uint32) uint32 {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	rv.applyLocked(change{acct: acct, counter: counter})
	return rv.users[acct]
}

// revoke ends the session s. It takes effect here at once; the store
// write is retried until it succeeds.
func (rv *revocations) revoke(ctx context.Context, s *session) {
	rv.end(ctx, s.ID, s.Expires)
}

// end revokes the session id, which expires then.
func (rv *revocations) end(ctx context.Context, id [16]byte, expires time.Time) {
	rv.mu.Lock()
	rv.applyLocked(change{revoked: true, id: id, expires: expires})
	rv.mu.Unlock()
	rv.write(ctx, storeWrite{id: id, expires: expires})
}

// login records a new session in its account's index: here at once, in
// the store with one write.
func (rv *revocations) login(ctx context.Context, e sessionEntry) {
	rv.mu.Lock()
	rv.applyLocked(change{login: &e})
	rv.mu.Unlock()
	rv.write(ctx, storeWrite{login: &e})
}

// listSessions appends the account's live sessions to dst, newest
// first, and returns how many older ones it has besides the session
// shown (which may be the zero ID).
func (rv *revocations) listSessions(dst []sessionEntry, acct accountID, shown [16]byte) ([]sessionEntry, int) {
	rv.mu.RLock()
	defer rv.mu.RUnlock()
	return rv.sessions.list(dst, acct, shown, rv.clock.now())
}

// endSession ends the indexed session id, if acct is nil or owns it, as a
// logout would, and returns it.
func (rv *revocations) endSession(ctx context.Context, acct *accountID, id [16]byte) (sessionEntry, bool) {
	rv.mu.RLock()
	e, known := rv.sessions.find(id)
	rv.mu.RUnlock()
	if !known || (acct != nil && *acct != e.acct) {
		return sessionEntry{}, false
	}
	rv.end(ctx, id, e.expires)
	return e, true
}

// signOutEverywhere ends every session of the account issued so far, on
// every instance, by raising its sign-out counter above theirs: at once
// here, and in the store to at least the same value.
func (rv *revocations) signOutEverywhere(ctx context.Context, acct accountID) {
	rv.mu.Lock()
	atLeast := rv.users[acct] + 1
	rv.applyLocked(change{acct: acct, counter: atLeast})
	rv.mu.Unlock()
	rv.write(ctx, storeWrite{signOut: true, acct: acct, atLeast: atLeast})
}

// write sends one write to the store, or keeps it pending when the
// store fails: a logout is never lost to a store error.
func (rv *revocations) write(ctx context.Context, w storeWrite) {
	if err := rv.send(ctx, w); err != nil {
		rv.logger.Error("writing to the store; will retry", zap.Error(err))
		rv.mu.Lock()
		rv.pending = append(rv.pending, w)
		rv.mu.Unlock()
	}
}

// send makes one write.
func (rv *revocations) send(ctx context.Context, w storeWrite) error {
	switch {
	case w.login != nil:
		return rv.store.login(ctx, *w.login)
	case !w.signOut:
		return rv.store.revoke(ctx, w.id, w.expires)
	}
	n, err := rv.store.signOut(ctx, w.acct, w.atLeast)
	if err == nil {
		rv.raise(w.acct, n)
	}
	return err
}

// retryPending sends the pending writes in order, keeping those that
// fail again.
func (rv *revocations) retryPending(ctx context.Context) {
	_ = retryInOrder(&rv.mu, &rv.pending, func(w storeWrite) error { return rv.send(ctx, w) })
}

// retryInOrder takes the queue under mu and sends its items in order;
// at the first that fails it puts that one and the rest back in front
// of what was queued meanwhile, and returns the error.
func retryInOrder[T any](mu sync.Locker, queue *[]T, send func(T) error) error {
	mu.Lock()
	items := *queue
	*queue = nil
	mu.Unlock()
	for i, item := range items {
		if err := send(item); err != nil {
			mu.Lock()
			*queue = append(items[i:len(items):len(items)], *queue...)
			mu.Unlock()
			return err
		}
	}
	return nil
}

// Interface guard
var _ caddy.Destructor = (*revocations)(nil)
