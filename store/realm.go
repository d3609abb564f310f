package store

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
)

// realmPool shares one Realm per store, realm and sync
// interval across config reloads, so a reload neither rereads the store
// nor drops a pending write.
var realmPool = caddy.NewUsagePool()

// joinTimeout bounds the first read of a store when a realm's list is
// made; what it could not read comes with the next changes.
const joinTimeout = 10 * time.Second

// leftWrites holds, by store and realm, the writes a list still had
// pending when it was destroyed (a reload changed its pool key during an
// outage), for the list that replaces it to send.
var leftWrites = struct {
	sync.Mutex
	byPlace map[string][]pendingWrite
}{byPlace: make(map[string][]pendingWrite)}

// Realm holds a realm's revoked sessions (until the session would have
// expired), each account's sign-out counter and its session index.
// Memory answers every request; the store keeps them across restarts and
// shares them with the other instances, whose changes a loop reads as
// they come.
type Realm struct {
	store   Backend
	now     func() time.Time
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
	users  map[AccountID]uint32
	// used holds the sessions' last use without a renewed cookie, by the
	// hour they expire, like byHour
	used map[int64]map[[16]byte]int64
	// generation is the store's generation, 0 until it is known.
	generation uint64
	// sessions is each account's index of sessions.
	sessions *sessionIndex
	// pending holds the store writes that failed, retried in order.
	pending []pendingWrite
	// records holds the realm's durable records by key.
	records map[string][]byte
	// restore is set when the store lost its data while this node held
	// records: the next syncs write them back until every one is.
	restore bool

	// recordsLoaded is set once a sync has read every durable record: a
	// node that started while the store was down asks the store for a
	// record until then.
	recordsLoaded atomic.Bool

	// down is set when a request's store call failed, and cleared by
	// the next sync that succeeds: meanwhile requests answer from
	// memory at once instead of each waiting for the store
	down atomic.Bool

	cancel context.CancelFunc
	done   chan struct{}
}

// Timeout bounds each call to the store, its connection included: a
// request whose store call fails or times out answers from memory (a
// write is kept and retried), and so do the requests after it until the
// store answers again.
const Timeout = 2 * time.Second

// errDown is the refusal of a request's store call while the store is
// down.
var errDown = errors.New("the store is down; answering from memory until it is back")

// call makes one store call of a request within Timeout, unless the
// store has failed since the last sync that succeeded. A call that
// failed because its request ended (the client went away) says nothing
// of the store, and leaves it up.
func (rv *Realm) call(ctx context.Context, f func(ctx context.Context) error) error {
	if rv.down.Load() {
		return errDown
	}
	callCtx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	err := f(callCtx)
	if err != nil && ctx.Err() == nil {
		rv.down.Store(true)
	}
	return err
}

// pendingWrite is a login, a revocation or a sign-out waiting for the
// store.
type pendingWrite struct {
	login   *Entry
	used    time.Time
	signOut bool
	id      [16]byte
	expires time.Time
	acct    AccountID
	atLeast uint32
}

// Join returns the realm's shared state in the store, reading it and
// starting its loop on first use; the handlers of successive configs
// with the same store, realm and options share it. Release it when done.
func Join(ctx caddy.Context, mod Module, opts Options) (*Realm, error) {
	place := mod.Place() + "\x00" + opts.Realm
	key := fmt.Sprintf("%s\x00%s\x00%s", place, opts.Every, opts.Remember)
	val, _, err := realmPool.LoadOrNew(key, func() (caddy.Destructor, error) {
		store, err := mod.Open(ctx, opts)
		if err != nil {
			return nil, err
		}
		loopCtx, cancel := context.WithCancel(context.Background())
		rv := NewRealm(store, opts)
		rv.poolKey, rv.place, rv.cancel = key, place, cancel
		joinCtx, stop := context.WithTimeout(ctx, joinTimeout)
		defer stop()
		read, err := rv.sync(joinCtx)
		if err != nil {
			// what the store holds is read again by the loop
			rv.logger.Error("reading revocations from the store", zap.Error(err))
		}
		if read >= bigJoin {
			// the read took many times the memory its changes keep, and
			// an idle process would hold it for minutes
			debug.FreeOSMemory()
		}
		go rv.loop(loopCtx)
		return rv, nil
	})
	if err != nil {
		return nil, err
	}
	return val.(*Realm), nil
}

// NewRealm makes an empty state on a backend, outside the process's
// pool and without a loop: Join is what handlers use.
func NewRealm(store Backend, opts Options) *Realm {
	return &Realm{
		store:    store,
		now:      opts.Now,
		logger:   opts.Logger,
		byHour:   make(map[int64]map[[16]byte]struct{}),
		used:     make(map[int64]map[[16]byte]int64),
		users:    make(map[AccountID]uint32),
		sessions: newSessionIndex(),
		records:  make(map[string][]byte),
		done:     make(chan struct{}),
	}
}

// Release gives back this handler's use of the shared state.
func (rv *Realm) Release() error {
	_, err := realmPool.Delete(rv.poolKey)
	return err
}

// Destruct stops the loop and closes the store once no handler uses
// the state; writes still pending are left for the list that follows.
func (rv *Realm) Destruct() error {
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
	return rv.store.Close()
}

// loop keeps memory up to date with the store until Destruct. An outage
// is logged when it begins, once a minute while it lasts, and when it
// ends.
func (rv *Realm) loop(ctx context.Context) {
	defer close(rv.done)
	outage := outageLog{logger: rv.logger}
	// the join has just synced
	for Sleep(ctx, rv.store.PollEvery()) {
		err := rv.syncWithin(ctx, joinTimeout)
		switch {
		case ctx.Err() != nil:
			return
		case err == nil:
			outage.ok(rv.now())
			continue
		}
		outage.failed(err, rv.now())
		if !Sleep(ctx, time.Second) {
			return
		}
	}
}

// syncWithin is one Sync of the loop, which no store may hold longer.
func (rv *Realm) syncWithin(ctx context.Context, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	return rv.Sync(ctx)
}

// Sync retries the pending writes, applies what changed in the store and
// drops what has expired; once it succeeds, requests use the store again
// after a failure. The loop calls it; a test may too.
func (rv *Realm) Sync(ctx context.Context) error {
	_, err := rv.sync(ctx)
	return err
}

// sync is Sync, and says how many changes it read.
func (rv *Realm) sync(ctx context.Context) (int, error) {
	rv.syncMu.Lock()
	defer rv.syncMu.Unlock()
	leftWrites.Lock()
	left := leftWrites.byPlace[rv.place]
	delete(leftWrites.byPlace, rv.place)
	leftWrites.Unlock()
	rv.mu.Lock()
	rv.pending = append(rv.pending, left...)
	for _, w := range left {
		rv.applyLocked(Change{Login: w.login, Revoked: w.login == nil && !w.signOut && w.used.IsZero(), ID: w.id, Expires: w.expires, Used: w.used})
	}
	rv.mu.Unlock()
	err := rv.retryPending(ctx)
	changes, cerr := rv.store.Changes(ctx)
	if err == nil && cerr == nil {
		rv.down.Store(false)
	}
	if cerr == nil {
		rv.recordsLoaded.Store(true)
	}
	err = errors.Join(err, cerr)
	rv.mu.Lock()
	for _, c := range changes {
		rv.applyLocked(c)
	}
	rv.expireLocked(rv.now())
	restore := rv.restore
	rv.mu.Unlock()
	if restore {
		err = errors.Join(err, rv.restoreRecords(ctx))
	}
	return len(changes), err
}

// bigJoin is the number of changes from which a join gives the memory of
// its read back to the system at once: a node joining a store with a
// long history (100,000 logouts) held 65 MiB more than one on an empty
// store after 20 s idle without it (BENCHMARKS.md). Later syncs read
// only what changed since the one before.
const bigJoin = 10_000

// expireLocked drops the revocations and sessions whose hour of expiry
// has passed; rv.mu is held.
func (rv *Realm) expireLocked(now time.Time) {
	for hour := range rv.byHour {
		if hour < now.Unix()/3600 {
			delete(rv.byHour, hour)
		}
	}
	for hour := range rv.used {
		if hour < now.Unix()/3600 {
			delete(rv.used, hour)
		}
	}
	rv.sessions.expire(now)
}

// applyLocked takes in one change, from the store or made here; rv.mu
// is held.
func (rv *Realm) applyLocked(c Change) {
	switch {
	case c.Generation != 0:
		if rv.generation != 0 && c.Generation != rv.generation {
			// every session of the old generation is refused now; the
			// sign-out counters start again from the store's, which lost
			// them too, and the index keeps the new generation's alone
			// (backends report a new generation before what they read
			// with it). Revocations stay: they harm nothing.
			rv.logger.Error("the store lost the realm's data: every session issued before is refused, and users sign in again",
				zap.Int("sessions", len(rv.sessions.owner)))
			rv.users = make(map[AccountID]uint32)
			rv.sessions.keep(c.Generation)
			// a second factor must never switch itself off: the records
			// held here are written back
			rv.restore = len(rv.records) > 0
		}
		rv.generation = c.Generation
	case c.Record != "":
		if c.Value == nil {
			delete(rv.records, c.Record)
		} else {
			rv.records[c.Record] = c.Value
		}
	case !c.Used.IsZero():
		hour := c.Expires.Unix() / 3600
		ids := rv.used[hour]
		if ids == nil {
			ids = make(map[[16]byte]int64)
			rv.used[hour] = ids
		}
		ids[c.ID] = max(ids[c.ID], c.Used.Unix())
	case c.Login != nil:
		// a login read after its logout or sign-out, or of another
		// generation, is not indexed
		_, revoked := rv.byHour[c.Login.Expires.Unix()/3600][c.Login.ID]
		if !revoked && c.Login.Counter >= rv.users[c.Login.Account] && (rv.generation == 0 || c.Login.Generation == rv.generation) {
			rv.sessions.add(*c.Login)
		}
	case c.Revoked:
		hour := c.Expires.Unix() / 3600
		ids := rv.byHour[hour]
		if ids == nil {
			ids = make(map[[16]byte]struct{})
			rv.byHour[hour] = ids
		}
		ids[c.ID] = struct{}{}
		rv.sessions.remove(c.ID)
	case c.Counter > rv.users[c.Account] && c.Counter <= MaxCounter:
		rv.users[c.Account] = c.Counter
		rv.sessions.signedOut(c.Account, c.Counter)
	}
}

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

// KeySet returns the realm's generated key set from the store, made by
// create when there is none. It is read at start, not in a request, and
// may wait as long as a join: instances that start together wait for the
// one that makes the key set under the storage lock, which the file
// storage polls each second (three at once on a busy machine took more
// than Timeout).
func (rv *Realm) KeySet(ctx context.Context, create func() ([]byte, error)) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, joinTimeout)
	defer cancel()
	return rv.store.KeySet(ctx, create)
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
