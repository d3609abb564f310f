package miniapp

import (
	"context"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
)

// storeModule is a guest module of the namespace
// http.handlers.miniapp.stores: a configured place where a realm's shared
// state lives (the generated key set, revocations and sign-out
// counters), chosen in the handler's `store`.
type storeModule interface {
	caddy.Module
	// place names where the state lives, so that the handlers of
	// successive configs that name the same place and realm share one
	// connection and one copy in memory.
	place() string
	// open connects to the place for a realm.
	open(ctx caddy.Context, opts storeOptions) (backend, error)
}

// storeOptions are what a backend needs to know of the handler.
type storeOptions struct {
	realm string
	// every is how often a backend that is polled looks for changes.
	every time.Duration
	// remember is how long a change must stay readable for other nodes:
	// the session lifetime, after which every session it concerns has
	// expired.
	remember time.Duration
	clock    *clock
	logger   *zap.Logger
}

// backend is one realm's connection to its store. The handler answers
// every request from memory; a backend is used when a key set is made,
// at login, logout and sign out everywhere, and by the loop that keeps
// memory up to date.
type backend interface {
	// keySet returns the realm's generated key set, storing the one made
	// by create when there is none; every node gets the same one.
	keySet(ctx context.Context, create func() ([]byte, error)) ([]byte, error)
	// login records a new session in its account's index until the
	// session expires: one write.
	login(ctx context.Context, e sessionEntry) error
	// revoke records a revoked session until the session expires.
	revoke(ctx context.Context, id [16]byte, expires time.Time) error
	// signOut raises the account's sign-out counter atomically to at
	// least atLeast and by at least one, and returns it.
	signOut(ctx context.Context, acct accountID, atLeast uint32) (uint32, error)
	// counter reads the account's sign-out counter; 0 when none.
	counter(ctx context.Context, acct accountID) (uint32, error)
	// changes returns what changed since the last call: on the first
	// call everything still in force. A backend may wait for changes (up
	// to a second) or pace itself; it returns when ctx ends.
	changes(ctx context.Context) ([]change, error)
	// pollEvery is how long to wait between calls to changes: the sync
	// interval for a store that is polled, 0 for one whose changes call
	// waits for news itself.
	pollEvery() time.Duration
	// close releases the connection.
	close() error
}

// change is one entry of a store's change feed: a new session (login),
// a revoked session until it expires, or an account's sign-out counter.
type change struct {
	login   *sessionEntry
	revoked bool
	id      [16]byte
	expires time.Time
	acct    accountID
	counter uint32
}
