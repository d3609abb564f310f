package store

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"go.uber.org/zap"
)

// Durable records are what an account keeps beyond its sessions, such
// as its second factor: they never expire, every node holds them in
// memory from the change feed, and a node that outlives a store's loss
// of its data writes back the ones it holds. Their values are opaque
// here (the handler seals them).

// Record returns the record named key as this node holds it: nil when
// there is none.
func (rv *Realm) Record(key string) []byte {
	rv.mu.RLock()
	defer rv.mu.RUnlock()
	return rv.records[key]
}

// RecordNow returns the record named key: as this node holds it once a
// sync has read every record, and from the store before then, so that a
// node that started while the store was down never takes a record for
// absent.
func (rv *Realm) RecordNow(ctx context.Context, key string) ([]byte, error) {
	if rv.recordsLoaded.Load() {
		return rv.Record(key), nil
	}
	return rv.ReadRecord(ctx, key)
}

// RecordKeys returns the keys of the records this node holds, sorted.
func (rv *Realm) RecordKeys() []string {
	rv.mu.RLock()
	defer rv.mu.RUnlock()
	return slices.Sorted(maps.Keys(rv.records))
}

// ReadRecord reads the record named key from the store, for a swap that
// found another value there, and holds what it read.
func (rv *Realm) ReadRecord(ctx context.Context, key string) ([]byte, error) {
	var value []byte
	err := rv.call(ctx, func(ctx context.Context) (err error) {
		value, err = rv.store.Record(ctx, key)
		return err
	})
	if err != nil {
		return nil, err
	}
	rv.holdRecord(key, value)
	return value, nil
}

// SwapRecord replaces the record named key, when the store holds old
// (nil: none), with new (nil: removes it), and reports whether it did.
// Unlike a logout, a swap is never left pending: its caller decides with
// the store's answer (a code is used once, or not at all).
func (rv *Realm) SwapRecord(ctx context.Context, key string, old, new []byte) (bool, error) {
	if len(new) > MaxRecord {
		return false, fmt.Errorf("record %q is %d bytes, more than %d", key, len(new), MaxRecord)
	}
	var swapped bool
	err := rv.call(ctx, func(ctx context.Context) (err error) {
		swapped, err = rv.store.SwapRecord(ctx, key, old, new)
		return err
	})
	if swapped {
		rv.holdRecord(key, new)
	}
	return swapped, err
}

// holdRecord keeps value as the record named key (nil: none).
func (rv *Realm) holdRecord(key string, value []byte) {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	rv.applyLocked(Change{Record: key, Value: value})
}

// Strike adds by to key's count of attempts, for every node where the
// store can (see Backend.Strike), and returns the count and when its
// window ends.
func (rv *Realm) Strike(ctx context.Context, key string, by int, window time.Duration) (int, time.Time, error) {
	var n int
	var until time.Time
	err := rv.call(ctx, func(ctx context.Context) (err error) {
		n, until, err = rv.store.Strike(ctx, key, by, window)
		return err
	})
	return n, until, err
}

// StrikesShared reports whether Strike counts for every node at once
// (see SharedStrikes); otherwise it counts on this node alone.
func (rv *Realm) StrikesShared() bool {
	_, ok := rv.store.(SharedStrikes)
	return ok
}

// Strikes reads key's count of failures and when its window ends.
func (rv *Realm) Strikes(ctx context.Context, key string) (int, time.Time, error) {
	var n int
	var until time.Time
	err := rv.call(ctx, func(ctx context.Context) (err error) {
		n, until, err = rv.store.Strikes(ctx, key)
		return err
	})
	return n, until, err
}

// restoreRecords writes back the records this node holds to a store
// that lost its data, keeping those another node wrote back first, and
// logs how many could not be written (tried again at the next sync).
func (rv *Realm) restoreRecords(ctx context.Context) error {
	rv.mu.RLock()
	held := maps.Clone(rv.records)
	rv.mu.RUnlock()
	var errs []error
	for key, value := range held {
		if _, err := rv.store.SwapRecord(ctx, key, nil, value); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		rv.logger.Error("the store lost the realm's data: accounts' records (second factors) held here could not all be written back; trying again",
			zap.Int("not_restored", len(errs)), zap.Int("held", len(held)), zap.Error(errors.Join(errs...)))
		return errors.Join(errs...)
	}
	rv.logger.Error("the store lost the realm's data: the accounts' records (second factors) held here are written back",
		zap.Int("restored", len(held)))
	rv.mu.Lock()
	rv.restore = false
	rv.mu.Unlock()
	return nil
}
