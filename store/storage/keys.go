package storage

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/caddy-miniapp/miniapp/store"
)

// KeySet loads the key set, or makes it once.
func (b *storageBackend) KeySet(ctx context.Context, create func() ([]byte, error)) ([]byte, error) {
	return b.once(ctx, b.prefix+"/keys.json", create)
}

// once loads the record at key, or makes it under the storage lock so
// that instances starting together agree on one. A lock that fails (the
// file storage can misread a lock file another instance is writing) is
// tried again a few times, reading first whether another instance has
// made the record meanwhile.
func (b *storageBackend) once(ctx context.Context, key string, create func() ([]byte, error)) ([]byte, error) {
	data, err := b.load(ctx, key, maxRecordBytes)
	if !errors.Is(err, fs.ErrNotExist) {
		return data, err
	}
	for attempt := 0; attempt < 5; attempt++ {
		if attempt > 0 {
			if !store.Sleep(ctx, time.Duration(attempt)*200*time.Millisecond) {
				return nil, ctx.Err()
			}
			data, err := b.load(ctx, key, maxRecordBytes)
			if !errors.Is(err, fs.ErrNotExist) {
				return data, err
			}
		}
		if err = b.storage.Lock(ctx, key); err == nil {
			defer func() { _ = b.storage.Unlock(context.WithoutCancel(ctx), key) }()
			return b.create(ctx, key, create)
		}
	}
	return nil, fmt.Errorf("locking %s: %v", key, err)
}

// create stores a new record unless another instance did while this
// one waited for the lock.
func (b *storageBackend) create(ctx context.Context, key string, create func() ([]byte, error)) ([]byte, error) {
	data, err := b.load(ctx, key, maxRecordBytes)
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

// checkGeneration reads the realm's generation, making it when it is
// gone, and returns it as a change when it is not the one reported
// before.
func (b *storageBackend) checkGeneration(ctx context.Context) ([]store.Change, error) {
	return b.generation.Check(b.once(ctx, b.prefix+"/generation", func() ([]byte, error) {
		return store.NewGenerationRecord(b.opts.Logger)
	}))
}
