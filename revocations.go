package miniapp

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
)

// Storage folders of a realm's revocation list.
const (
	revokedFolder = "revoked"
	counterFolder = "signout-counter"
)

// revocationPool shares one revocations per storage, realm and sync
// interval across config reloads, so a reload neither rereads the list nor drops a
// pending write; a changed interval starts a new list from storage.
var revocationPool = caddy.NewUsagePool()

// revocations holds a realm's revoked session IDs (until the session
// would have expired) and each account's sign-out counter. Memory answers
// every request; Caddy's storage keeps the list across restarts and
// shares it with the other instances, which reread it every sync period.
type revocations struct {
	storage certmagic.Storage
	clock   *clock
	logger  *zap.Logger
	poolKey string
	// revokedPrefix and counterPrefix are the realm's storage folders.
	revokedPrefix, counterPrefix string

	mu       sync.RWMutex
	sessions map[[16]byte]time.Time
	users    map[accountID]uint32
	// pending holds storage writes that failed, by key, to be retried.
	pending map[string][]byte

	stop chan struct{}
	done chan struct{}
}

// openRevocations returns the shared list for the storage, loading it
// and starting its sync loop on first use.
func openRevocations(ctx caddy.Context, storage certmagic.Storage, realm string, every time.Duration, clk *clock, logger *zap.Logger) (*revocations, error) {
	key := fmt.Sprintf("%s\x00%s\x00%s", storageID(storage), realm, every)
	val, _, err := revocationPool.LoadOrNew(key, func() (caddy.Destructor, error) {
		rv := &revocations{
			storage:       storage,
			clock:         clk,
			logger:        logger,
			poolKey:       key,
			revokedPrefix: realmPath(realm) + "/" + revokedFolder,
			counterPrefix: realmPath(realm) + "/" + counterFolder,
			sessions:      make(map[[16]byte]time.Time),
			users:         make(map[accountID]uint32),
			pending:       make(map[string][]byte),
			stop:          make(chan struct{}),
			done:          make(chan struct{}),
		}
		ctx, cancel := context.WithTimeout(ctx, every)
		defer cancel()
		if err := rv.sync(ctx); err != nil {
			// what storage has is read again at the next sync
			logger.Error("reading revocations from storage", zap.Error(err))
		}
		go rv.loop(every)
		return rv, nil
	})
	if err != nil {
		return nil, err
	}
	return val.(*revocations), nil
}

// release gives back this handler's use of the shared list.
func (rv *revocations) release() error {
	_, err := revocationPool.Delete(rv.poolKey)
	return err
}

// Destruct stops the sync loop once no handler uses the list.
func (rv *revocations) Destruct() error {
	close(rv.stop)
	<-rv.done
	return nil
}

func (rv *revocations) loop(every time.Duration) {
	defer close(rv.done)
	ticker := time.NewTicker(every)
	defer ticker.Stop()
	for {
		select {
		case <-rv.stop:
			return
		case <-ticker.C:
			ctx, cancel := context.WithTimeout(context.Background(), every)
			if err := rv.sync(ctx); err != nil {
				rv.logger.Error("syncing revocations with storage", zap.Error(err))
			}
			cancel()
		}
	}
}

// has reports whether s was logged out, here or on another instance
// (within one sync period), or belongs to a user who signed out
// everywhere since it began.
func (rv *revocations) has(acct accountID, s *session) bool {
	rv.mu.RLock()
	_, revoked := rv.sessions[s.ID]
	counter := rv.users[acct]
	rv.mu.RUnlock()
	return revoked || s.Counter < counter
}

// counter returns the user's current sign-out counter for a new
// session, read from storage so that a sign-out on another
// instance that this one has not synced yet does not end the new session
// at the next sync. When storage fails, memory answers.
func (rv *revocations) counter(ctx context.Context, acct accountID) uint32 {
	stored, err := rv.loadCounter(ctx, acct)
	if err != nil {
		rv.logger.Warn("reading sign-out counter; using the cached one", zap.Error(err))
	}
	return rv.raise(acct, stored)
}

// raise lifts the account's sign-out counter to counter when that is
// higher, and returns the account's counter.
func (rv *revocations) raise(acct accountID, counter uint32) uint32 {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	if counter > rv.users[acct] {
		rv.users[acct] = counter
	}
	return rv.users[acct]
}

// errBadCounter marks a stored sign-out counter that does not parse.
var errBadCounter = errors.New("sign-out counter is not a number")

// loadCounter reads the account's counter from storage; 0 when none.
func (rv *revocations) loadCounter(ctx context.Context, acct accountID) (uint32, error) {
	value, err := rv.storage.Load(ctx, rv.counterKey(acct))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	counter, err := strconv.ParseUint(string(value), 10, 32)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", rv.counterKey(acct), errBadCounter)
	}
	return uint32(counter), nil
}

// revoke ends the session s. It takes effect here at once; the storage
// write is retried until it succeeds.
func (rv *revocations) revoke(ctx context.Context, s *session) {
	rv.mu.Lock()
	rv.sessions[s.ID] = s.Expires
	rv.mu.Unlock()
	rv.write(ctx, rv.revokedPrefix+"/"+hex.EncodeToString(s.ID[:]), strconv.FormatInt(s.Expires.Unix(), 10))
}

// signOutEverywhere ends every session of the account issued so far, on
// every instance, by raising its sign-out counter above theirs.
// The counter is raised under the storage lock from the highest value
// known here or in storage, so two instances never write the same or a
// lower value.
func (rv *revocations) signOutEverywhere(ctx context.Context, acct accountID) {
	key := rv.counterKey(acct)
	if err := rv.storage.Lock(ctx, key); err != nil {
		rv.logger.Error("locking sign-out counter; raising it without the lock", zap.Error(err))
	} else {
		defer func() { _ = rv.storage.Unlock(ctx, key) }()
	}
	stored, err := rv.loadCounter(ctx, acct)
	if err != nil {
		rv.logger.Error("reading sign-out counter; raising the cached one", zap.Error(err))
	}
	rv.mu.Lock()
	counter := max(stored, rv.users[acct]) + 1
	rv.users[acct] = counter
	rv.mu.Unlock()
	rv.write(ctx, key, strconv.FormatUint(uint64(counter), 10))
}

// counterKey is where the account's sign-out counter is stored: a key
// of one length whatever the user name.
func (rv *revocations) counterKey(acct accountID) string {
	return rv.counterPrefix + "/" + hex.EncodeToString(acct[:])
}

// write stores one entry, or keeps it pending for the next sync when the
// storage fails: a logout is never lost to a storage error.
func (rv *revocations) write(ctx context.Context, key, value string) {
	if err := rv.storage.Store(ctx, key, []byte(value)); err != nil {
		rv.logger.Error("storing revocation; will retry", zap.String("key", key), zap.Error(err))
		rv.mu.Lock()
		rv.pending[key] = []byte(value)
		rv.mu.Unlock()
	}
}

// sync retries pending writes, reads what other instances wrote, and
// prunes expired revocations from memory and storage.
func (rv *revocations) sync(ctx context.Context) error {
	rv.mu.Lock()
	pending := rv.pending
	rv.pending = make(map[string][]byte)
	rv.mu.Unlock()
	var errs []error
	for key, value := range pending {
		if err := rv.storage.Store(ctx, key, value); err != nil {
			errs = append(errs, err)
			rv.mu.Lock()
			if _, newer := rv.pending[key]; !newer {
				rv.pending[key] = value
			}
			rv.mu.Unlock()
		}
	}

	now := rv.clock.now()
	errs = append(errs, rv.syncRevoked(ctx, now))
	errs = append(errs, rv.syncCounters(ctx))
	return errors.Join(errs...)
}

// syncRevoked loads the revoked sessions this instance does not know yet
// and deletes the expired ones, from memory and storage.
func (rv *revocations) syncRevoked(ctx context.Context, now time.Time) error {
	keys, err := rv.storage.List(ctx, rv.revokedPrefix, false)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("listing %s: %v", rv.revokedPrefix, err)
	}
	for _, key := range keys {
		id, err := hex.DecodeString(key[strings.LastIndexByte(key, '/')+1:])
		if err != nil || len(id) != 16 {
			continue
		}
		rv.mu.RLock()
		expires, known := rv.sessions[[16]byte(id)]
		rv.mu.RUnlock()
		if !known {
			value, err := rv.storage.Load(ctx, key)
			if errors.Is(err, fs.ErrNotExist) {
				continue // pruned by another instance meanwhile
			}
			if err != nil {
				return fmt.Errorf("loading %s: %v", key, err)
			}
			exp, err := strconv.ParseInt(string(value), 10, 64)
			if err != nil {
				continue
			}
			expires = time.Unix(exp, 0)
		}
		if expires.After(now) {
			rv.mu.Lock()
			rv.sessions[[16]byte(id)] = expires
			rv.mu.Unlock()
		} else if err := rv.storage.Delete(ctx, key); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("pruning %s: %v", key, err)
		}
	}
	rv.mu.Lock()
	for id, expires := range rv.sessions {
		if !expires.After(now) {
			delete(rv.sessions, id)
		}
	}
	rv.mu.Unlock()
	return nil
}

// syncCounters reads every account's sign-out counter; counters only
// grow, so the highest value wins.
func (rv *revocations) syncCounters(ctx context.Context) error {
	keys, err := rv.storage.List(ctx, rv.counterPrefix, false)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("listing %s: %v", rv.counterPrefix, err)
	}
	for _, key := range keys {
		id, err := hex.DecodeString(key[strings.LastIndexByte(key, '/')+1:])
		if err != nil || len(id) != len(accountID{}) {
			continue
		}
		counter, err := rv.loadCounter(ctx, accountID(id))
		if errors.Is(err, errBadCounter) {
			continue // one bad entry must not stop the others' sync
		}
		if err != nil {
			return fmt.Errorf("loading %s: %v", key, err)
		}
		rv.raise(accountID(id), counter)
	}
	return nil
}

// Interface guard
var _ caddy.Destructor = (*revocations)(nil)
