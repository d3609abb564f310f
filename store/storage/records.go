package storage

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"time"

	"github.com/caddy-miniapp/miniapp/store"
)

// A durable record is a file of the realm's records folder, named by the
// hex of its key; a swap is announced by a journal entry "R <key>
// <until>", on which the other nodes read the file. Swaps are atomic
// within a node only: Caddy's storage locks poll each second, too slow
// for a sign-in, so two nodes that swap one record within a sync interval
// may both succeed (the README says so).

func (b *storageBackend) recordsDir() string { return b.prefix + "/records" }
func (b *storageBackend) recordKey(key string) string {
	return b.recordsDir() + "/" + hex.EncodeToString([]byte(key))
}

// Record reads the record's file; a file larger than a record can be is
// an error, not an absent record, so a second factor never switches
// itself off.
func (b *storageBackend) Record(ctx context.Context, key string) ([]byte, error) {
	data, err := b.load(ctx, b.recordKey(key), store.MaxRecord)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return data, err
}

// SwapRecord compares and replaces the record's file under this node's
// lock, then tells the other nodes through the journal.
func (b *storageBackend) SwapRecord(ctx context.Context, key string, old, new []byte) (bool, error) {
	b.recordMu.Lock()
	defer b.recordMu.Unlock()
	current, err := b.Record(ctx, key)
	if err != nil {
		return false, err
	}
	if !bytes.Equal(current, old) {
		return false, nil
	}
	if new == nil {
		err = b.storage.Delete(ctx, b.recordKey(key))
		if errors.Is(err, fs.ErrNotExist) {
			err = nil
		}
	} else {
		err = b.storage.Store(ctx, b.recordKey(key), new)
	}
	if err != nil {
		return false, fmt.Errorf("storing record: %v", err)
	}
	b.mu.Lock()
	until := b.opts.Now().Add(b.remember).Unix()
	b.mu.Unlock()
	line := "R " + hex.EncodeToString([]byte(key)) + " " + strconv.FormatInt(until, 10)
	if err := b.appendLine(ctx, line, until); err != nil {
		// the record is stored: telling the others is retried apart
		b.mu.Lock()
		b.unsent = append(b.unsent, unsentLine{line, until})
		b.mu.Unlock()
	}
	return true, nil
}

// readRecords fills in the values of the record changes read from the
// journal, and on the first call adds every record of the folder.
func (b *storageBackend) readRecords(ctx context.Context, changes []store.Change) ([]store.Change, error) {
	var errs []error
	for i := range changes {
		if key := changes[i].Record; key != "" {
			value, err := b.Record(ctx, key)
			if err != nil {
				// a record that cannot be read is not taken as removed
				errs = append(errs, err)
				changes[i] = store.Change{}
				continue
			}
			changes[i].Value = value
		}
	}
	if b.recordsRead {
		return changes, errors.Join(errs...)
	}
	files, err := b.storage.List(ctx, b.recordsDir(), false)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return changes, errors.Join(append(errs, fmt.Errorf("listing %s: %v", b.recordsDir(), err))...)
	}
	for _, file := range files {
		key, err := hex.DecodeString(path.Base(file))
		if err != nil {
			continue
		}
		value, err := b.Record(ctx, string(key))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if value != nil {
			changes = append(changes, store.Change{Record: string(key), Value: value})
		}
	}
	if len(errs) == 0 {
		b.recordsRead = true
	}
	return changes, errors.Join(errs...)
}

// strikes counts attempts on this node.
type strikes struct {
	n     int
	until time.Time
}

// maxStrikeKeys bounds the keys counted at once; expired windows go first.
const maxStrikeKeys = 100000

func (b *storageBackend) Strike(_ context.Context, key string, by int, window time.Duration) (int, time.Time, error) {
	b.strikeMu.Lock()
	defer b.strikeMu.Unlock()
	now := b.opts.Now()
	s, ok := b.strikes[key]
	open := ok && now.Before(s.until)
	if by < 0 && !open {
		return 0, time.Time{}, nil
	}
	if !open {
		if len(b.strikes) >= maxStrikeKeys {
			for k, old := range b.strikes {
				if !now.Before(old.until) {
					delete(b.strikes, k)
				}
			}
		}
		s = strikes{until: now.Add(window)}
	}
	s.n = max(0, s.n+by)
	b.strikes[key] = s
	return s.n, s.until, nil
}

func (b *storageBackend) Strikes(_ context.Context, key string) (int, time.Time, error) {
	b.strikeMu.Lock()
	defer b.strikeMu.Unlock()
	s, ok := b.strikes[key]
	if !ok || !b.opts.Now().Before(s.until) {
		return 0, time.Time{}, nil
	}
	return s.n, s.until, nil
}
