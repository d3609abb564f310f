// Package store owns a realm's shared state: the interface of the
// backends that keep it (guest modules of the namespace
// http.handlers.miniapp.stores, such as the storage and redis packages
// below this one), and what every node keeps in memory from a backend's
// change feed: revoked sessions, sign-out counters and each account's
// session index. Requests are answered from memory; a backend is
// written at login, logout and sign out everywhere, and read by a loop.
//
// The package is public so that others can write a backend as a Caddy
// module: its interface uses its own and plain types only. It knows
// nothing of Caddy's handler, cookies or password hashes.
package store

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
)

// Module is a guest module of the namespace
// http.handlers.miniapp.stores: a configured place where a realm's
// shared state lives (the generated key set, revocations, sign-out
// counters and the session index), chosen in the handler's `store`.
type Module interface {
	caddy.Module
	// Place names where the state lives, so that the handlers of
	// successive configs that name the same place and realm share one
	// connection and one copy in memory.
	Place() string
	// Open connects to the place for a realm.
	Open(ctx caddy.Context, opts Options) (Backend, error)
}

// Options are what a backend needs to know of the handler.
type Options struct {
	// Realm names the state's namespace.
	Realm string
	// Every is how often a backend that is polled looks for changes.
	Every time.Duration
	// Remember is how long a change must stay readable for other nodes:
	// the session lifetime, after which every session it concerns has
	// expired.
	Remember time.Duration
	// Now is the source of time.
	Now func() time.Time
	// Logger receives the store's errors.
	Logger *zap.Logger
}

// MaxDevices is how many of an account's browsers count as its known
// devices: the newest, across every node.
const MaxDevices = 20

// AccountID names an account in a realm: sessions and sign-out counters
// are kept by it.
type AccountID [16]byte

// Backend is one realm's connection to its store.
type Backend interface {
	// KeySet returns the realm's generated key set, storing the one made
	// by create when there is none; every node gets the same one.
	KeySet(ctx context.Context, create func() ([]byte, error)) ([]byte, error)
	// Login records a new session in its account's index until the
	// session expires: one write.
	Login(ctx context.Context, e Entry) error
	// Revoke records a revoked session until the session expires.
	Revoke(ctx context.Context, id [16]byte, expires time.Time) error
	// Use records that the session id, which expires then, was used at a
	// time where its cookie could not be renewed (a forward_auth check),
	// until the session expires.
	Use(ctx context.Context, id [16]byte, expires, at time.Time) error
	// SignOut raises the account's sign-out counter atomically to at
	// least atLeast and by at least one, and returns it.
	SignOut(ctx context.Context, acct AccountID, atLeast uint32) (uint32, error)
	// Counter reads the account's sign-out counter; 0 when none.
	Counter(ctx context.Context, acct AccountID) (uint32, error)
	// AddDevice records a browser that signed in to the account, known
	// until then, keeping the account's newest MaxDevices.
	AddDevice(ctx context.Context, acct AccountID, id [16]byte, until time.Time) error
	// HasDevice reports whether the browser is among the account's
	// newest MaxDevices and still known.
	HasDevice(ctx context.Context, acct AccountID, id [16]byte) (bool, error)
	// Changes returns what changed since the last call: on the first
	// call everything still in force. A backend may wait for changes (up
	// to a second) or pace itself; it returns when ctx ends. What it read
	// before an error is returned with the error.
	Changes(ctx context.Context) ([]Change, error)
	// PollEvery is how long to wait between calls to Changes: the sync
	// interval for a store that is polled, 0 for one whose Changes call
	// waits for news itself.
	PollEvery() time.Duration
	// Record reads the durable record named key: nil when there is none.
	Record(ctx context.Context, key string) ([]byte, error)
	// SwapRecord replaces the record named key, when it holds old (nil:
	// when there is none), with new (nil: removes it), tells the other
	// nodes, and reports whether the record held old. Records never
	// expire. Redis swaps atomically for every node; storage within this
	// node, so two nodes that swap one record within a sync interval
	// may both succeed.
	SwapRecord(ctx context.Context, key string, old, new []byte) (bool, error)
	// Strike adds by to key's count of attempts in a window that begins
	// with the first and lasts window, and returns the count and the
	// window's end: an attempt is counted before it is checked (so that
	// many at once cannot all pass), and taken back (by -1) when it
	// succeeds; a negative by without an open window does nothing. Redis
	// counts for every node (INCRBY with a TTL); storage counts on this
	// node.
	Strike(ctx context.Context, key string, by int, window time.Duration) (int, time.Time, error)
	// Strikes reads the count of key's window and its end: 0 when no
	// window is open.
	Strikes(ctx context.Context, key string) (int, time.Time, error)
	// Close releases the connection.
	Close() error
}

// SharedStrikes is a Backend whose Strike counts for every node at once
// (Redis): a count of one is proof that no node counted before.
type SharedStrikes interface {
	SharedStrikes()
}

// MaxRecord bounds a durable record's size, in bytes: a larger one read
// from the store is refused, and no node writes one.
const MaxRecord = 64 << 10

// Change is one entry of a store's change feed: a new session (Login),
// a revoked session until it expires, an account's sign-out counter, the
// realm's generation or a durable record.
type Change struct {
	// Login is a new session, or nil.
	Login *Entry
	// Revoked marks the revocation of session ID until Expires.
	Revoked bool
	ID      [16]byte
	Expires time.Time
	// Used, when not zero, is when session ID (until Expires) was last
	// used without its cookie being renewed.
	Used time.Time
	// Account's sign-out counter is now Counter.
	Account AccountID
	Counter uint32
	// Generation, when not 0, is the realm's generation in the store: a
	// record made once (SET NX, or under the storage lock) that a store
	// which lost its data no longer holds, so that a new one is made.
	// Every backend reports it on the first call of Changes and whenever
	// it finds it changed or gone (then making the new one).
	Generation uint64
	// Record, when not empty, names a durable record that now holds
	// Value (nil: removed). Every backend reports each record it holds
	// on the first call of Changes.
	Record string
	Value  []byte
}

// Generation is what a backend keeps of the realm's generation record:
// the value it reported last.
type Generation struct {
	reported uint64
}

// Check reads a backend's generation record, as Once returned it, and
// returns the change to report when the generation is not the one
// reported before; a record that is no generation is an error.
func (g *Generation) Check(record []byte, err error) ([]Change, error) {
	if err != nil {
		return nil, err
	}
	n, err := strconv.ParseUint(string(record), 10, 64)
	if err != nil || n == 0 {
		return nil, errors.New("the realm's generation record is not a generation")
	}
	if n == g.reported {
		return nil, nil
	}
	g.reported = n
	return []Change{{Generation: n}}, nil
}

// NewGenerationRecord makes a generation record, for a backend that finds
// none (a new store, or one that lost its data), and logs that it did.
func NewGenerationRecord(logger *zap.Logger) ([]byte, error) {
	logger.Info("the realm has no generation in the store (a new store, or one that lost its data): making one; sessions issued under another are refused")
	var b [8]byte
	for {
		_, _ = rand.Read(b[:])
		if g := binary.BigEndian.Uint64(b[:]); g != 0 {
			return []byte(strconv.FormatUint(g, 10)), nil
		}
	}
}

// Sleep waits for d or the end of ctx, and reports whether ctx lives.
func Sleep(ctx context.Context, d time.Duration) bool {
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

// RetryInOrder takes the queue under mu and sends its items in order;
// at the first that fails it puts that one and the rest back in front
// of what was queued meanwhile, and returns the error.
func RetryInOrder[T any](mu sync.Locker, queue *[]T, send func(T) error) error {
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
