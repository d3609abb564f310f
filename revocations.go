package miniapp

import (
	"context"
	"encoding/base64"
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

// Storage prefixes of the revocation list.
const (
	revokedPrefix = "miniapp/revoked"
	counterPrefix = "miniapp/signout-counter"
)

// revocationPool shares one revocations per storage and sync interval
// across config reloads, so a reload neither rereads the list nor drops a
// pending write; a changed interval starts a new list from storage.
var revocationPool = caddy.NewUsagePool()

// revocations holds the revoked session IDs (until the session would
// have expired) and each user's sign-out counter. Memory answers
// every request; Caddy's storage keeps the list across restarts and
// shares it with the other instances, which reread it every sync period.
type revocations struct {
	storage certmagic.Storage
	clock   *clock
	logger  *zap.Logger
	poolKey string

	mu       sync.RWMutex
	sessions map[[16]byte]time.Time
	users    map[string]uint32
	// pending holds storage writes that failed, by key, to be retried.
	pending map[string][]byte

	stop chan struct{}
	done chan struct{}
}

// openRevocations returns the shared list for the storage, loading it
// and starting its sync loop on first use.
func openRevocations(ctx caddy.Context, storage certmagic.Storage, every time.Duration, clk *clock, logger *zap.Logger) (*revocations, error) {
	key := fmt.Sprintf("%s/%s", storageID(storage), every)
	val, _, err := revocationPool.LoadOrNew(key, func() (caddy.Destructor, error) {
		rv := &revocations{
			storage:  storage,
			clock:    clk,
			logger:   logger,
			poolKey:  key,
			sessions: make(map[[16]byte]time.Time),
			users:    make(map[string]uint32),
			pending:  make(map[string][]byte),
			stop:     make(chan struct{}),
			done:     make(chan struct{}),
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
func (rv *revocations) has(s *session) bool {
	rv.mu.RLock()
	_, revoked := rv.sessions[s.ID]
	counter := rv.users[s.User]
	rv.mu.RUnlock()
	return revoked || s.Counter < counter
}

// counter returns the user's current sign-out counter for a new
// session, read from storage so that a sign-out on another
// instance that this one has not synced yet does not end the new session
// at the next sync. When storage fails, memory answers.
func (rv *revocations) counter(ctx context.Context, user string) uint32 {
	stored, err := rv.loadCounter(ctx, user)
	if err != nil {
		rv.logger.Warn("reading sign-out counter; using the cached one", zap.Error(err))
	}
	return rv.raise(user, stored)
}

// raise lifts the user's sign-out counter to counter when that is
// higher, and returns the user's counter.
func (rv *revocations) raise(user string, counter uint32) uint32 {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	if counter > rv.users[user] {
		rv.users[user] = counter
	}
	return rv.users[user]
}

// errBadCounter marks a stored sign-out counter that does not parse.
var errBadCounter = errors.New("sign-out counter is not a number")

// loadCounter reads the user's counter from storage; 0 when none.
func (rv *revocations) loadCounter(ctx context.Context, user string) (uint32, error) {
	value, err := rv.storage.Load(ctx, counterKey(user))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	counter, err := strconv.ParseUint(string(value), 10, 32)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", counterKey(user), errBadCounter)
	}
	return uint32(counter), nil
}

// revoke ends the session s. It takes effect here at once; the storage
// write is retried until it succeeds.
func (rv *revocations) revoke(ctx context.Context, s *session) {
	rv.mu.Lock()
	rv.sessions[s.ID] = s.Expires
	rv.mu.Unlock()
	rv.write(ctx, revokedPrefix+"/"+hex.EncodeToString(s.ID[:]), strconv.FormatInt(s.Expires.Unix(), 10))
}

// signOutEverywhere ends every session of the user issued so far, on
// every instance, by raising the user's sign-out counter above theirs.
// The counter is raised under the storage lock from the highest value
// known here or in storage, so two instances never write the same or a
// lower value.
func (rv *revocations) signOutEverywhere(ctx context.Context, user string) {
	key := counterKey(user)
	if err := rv.storage.Lock(ctx, key); err != nil {
		rv.logger.Error("locking sign-out counter; raising it without the lock", zap.Error(err))
	} else {
		defer func() { _ = rv.storage.Unlock(ctx, key) }()
	}
	stored, err := rv.loadCounter(ctx, user)
	if err != nil {
		rv.logger.Error("reading sign-out counter; raising the cached one", zap.Error(err))
	}
	rv.mu.Lock()
	counter := max(stored, rv.users[user]) + 1
	rv.users[user] = counter
	rv.mu.Unlock()
	rv.write(ctx, key, strconv.FormatUint(uint64(counter), 10))
}

// counterKey is where the user's sign-out counter is stored.
func counterKey(user string) string {
	return counterPrefix + "/" + base64.RawURLEncoding.EncodeToString([]byte(user))
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
	keys, err := rv.storage.List(ctx, revokedPrefix, false)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("listing %s: %v", revokedPrefix, err)
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

// syncCounters reads every user's sign-out counter; counters only grow,
// so the highest value wins.
func (rv *revocations) syncCounters(ctx context.Context) error {
	keys, err := rv.storage.List(ctx, counterPrefix, false)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("listing %s: %v", counterPrefix, err)
	}
	for _, key := range keys {
		user, err := base64.RawURLEncoding.DecodeString(key[strings.LastIndexByte(key, '/')+1:])
		if err != nil {
			continue
		}
		counter, err := rv.loadCounter(ctx, string(user))
		if errors.Is(err, errBadCounter) {
			continue // one bad entry must not stop the others' sync
		}
		if err != nil {
			return fmt.Errorf("loading %s: %v", key, err)
		}
		rv.raise(string(user), counter)
	}
	return nil
}

// Interface guard
var _ caddy.Destructor = (*revocations)(nil)
