package storage

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/caddy-miniapp/miniapp/store"
)

// KeySet loads the key set, or makes it under the storage lock so that
// instances starting together agree on one. A lock that fails (the file
// storage can misread a lock file another instance is writing) is tried
// again a few times, reading first whether another instance has made
// the key set meanwhile.
func (b *storageBackend) KeySet(ctx context.Context, create func() ([]byte, error)) ([]byte, error) {
	key := realmPath(b.opts.Realm) + "/keys.json"
	data, err := b.storage.Load(ctx, key)
	if !errors.Is(err, fs.ErrNotExist) {
		return data, err
	}
	for attempt := 0; attempt < 5; attempt++ {
		if attempt > 0 {
			if !store.Sleep(ctx, time.Duration(attempt)*200*time.Millisecond) {
				return nil, ctx.Err()
			}
			data, err := b.storage.Load(ctx, key)
			if !errors.Is(err, fs.ErrNotExist) {
				return data, err
			}
		}
		if err = b.storage.Lock(ctx, key); err == nil {
			defer func() { _ = b.storage.Unlock(context.WithoutCancel(ctx), key) }()
			return b.createKeySet(ctx, key, create)
		}
	}
	return nil, fmt.Errorf("locking %s: %v", key, err)
}

// createKeySet stores a new key set unless another instance did while
// this one waited for the lock.
func (b *storageBackend) createKeySet(ctx context.Context, key string, create func() ([]byte, error)) ([]byte, error) {
	data, err := b.storage.Load(ctx, key)
	if !errors.Is(err, fs.ErrNotExist) {
		return data, err
	}
	if data, err = create(); err != nil {
		return nil, err
	}
	if err := b.storage.Store(ctx, key, data); err != nil {
		return nil, fmt.Errorf("storing %s: %v", key, err)
	}
	return data, nil
}
