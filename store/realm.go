package store

import (
	"bytes"
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

	// version counts the changes taken in (see Version)
	version atomic.Uint64

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

// Version counts the changes this node has taken in, its own and the
// store's: what the realm holds here (the sessions and their index,
// revocations, sign-out counters, records, the generation) is unchanged
// while it is, apart from sessions' last use and what has expired.
func (rv *Realm) Version() uint64 { return rv.version.Load() }

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
		if c.Generation != rv.generation {
			rv.version.Add(1)
		}
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
		old, had := rv.records[c.Record]
		if c.Value == nil {
			delete(rv.records, c.Record)
		} else {
			rv.records[c.Record] = c.Value
		}
		if had != (c.Value != nil) || !bytes.Equal(old, c.Value) {
			rv.version.Add(1)
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
		_, known := rv.sessions.owner[c.Login.ID]
		if !known && !revoked && c.Login.Counter >= rv.users[c.Login.Account] && (rv.generation == 0 || c.Login.Generation == rv.generation) {
			rv.sessions.add(*c.Login)
			rv.version.Add(1)
		}
	case c.Revoked:
		hour := c.Expires.Unix() / 3600
		ids := rv.byHour[hour]
		if ids == nil {
			ids = make(map[[16]byte]struct{})
			rv.byHour[hour] = ids
		}
		if _, already := ids[c.ID]; !already {
			ids[c.ID] = struct{}{}
			rv.version.Add(1)
		}
		rv.sessions.remove(c.ID)
	case c.Counter > rv.users[c.Account] && c.Counter <= MaxCounter:
		rv.users[c.Account] = c.Counter
		rv.sessions.signedOut(c.Account, c.Counter)
		rv.version.Add(1)
	}
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
