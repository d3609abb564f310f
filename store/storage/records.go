package storage

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/caddy-miniapp/miniapp/store"
)

// A durable record is a file of the realm's records folder, named by the
// hex of its key; a swap is announced by a journal entry "R <key>
// <until>", on which the other nodes read the file. Swaps are atomic
// within a node only: Caddy's storage locks poll each second, too slow
// for a sign-in, so two nodes that swap one record within a sync interval
// may both succeed (the README says so).
//
// A key longer than maxHexKey (a long user name) would make a name
// longer than file systems take (255 bytes), and could never be stored:
// its file is named by the hex of its SHA-256 after digestPrefix, and
// holds the key before the value (its length as a uvarint, then the
// key), so that a listing finds it. Every key that could be stored before
// keeps its hex name, which every node of a rolling upgrade reads: a node
// that could not see a second factor would take it for off.

// maxHexKey is the longest key whose file is named by its hex: 254
// characters, the longest even name within 255 bytes.
const maxHexKey = 127

// digestPrefix starts the name of a long key's file; hex never holds '-'.
const digestPrefix = "d-"

func (b *storageBackend) recordsDir() string { return b.prefix + "/records" }
func (b *storageBackend) recordKey(key string) string {
	if len(key) <= maxHexKey {
		return b.recordsDir() + "/" + hex.EncodeToString([]byte(key))
	}
	sum := sha256.Sum256([]byte(key))
	return b.recordsDir() + "/" + digestPrefix + hex.EncodeToString(sum[:])
}

// Record reads the record's file; a file larger than a record can be, or
// a long key's file that holds another key, is an error, not an absent
// record, so a second factor never switches itself off.
func (b *storageBackend) Record(ctx context.Context, key string) ([]byte, error) {
	data, err := b.load(ctx, b.recordKey(key), store.MaxRecord+binary.MaxVarintLen64+int64(len(key)))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil || len(key) <= maxHexKey {
		return data, err
	}
	held, value, ok := splitKeyed(data)
	if !ok || held != key {
		return nil, fmt.Errorf("record file %s holds no record of its key", b.recordKey(key))
	}
	return value, nil
}

// keyed is a long key's file: the key's length, the key, the value.
func keyed(key string, value []byte) []byte {
	return append(append(binary.AppendUvarint(nil, uint64(len(key))), key...), value...)
}

// splitKeyed reads a long key's file.
func splitKeyed(data []byte) (string, []byte, bool) {
	n, size := binary.Uvarint(data)
	if size <= 0 || n > uint64(len(data)-size) {
		return "", nil, false
	}
	end := size + int(n)
	return string(data[size:end]), data[end:], true
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
	} else if len(key) > maxHexKey {
		err = b.storage.Store(ctx, b.recordKey(key), keyed(key, new))
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
		key, err := b.keyOfFile(ctx, path.Base(file))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if key == "" {
			continue
		}
		value, err := b.Record(ctx, key)
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

// keyOfFile is the key of the record file of the name: its hex, or for
// a long key's file the key it holds; "" for a file of no record.
func (b *storageBackend) keyOfFile(ctx context.Context, name string) (string, error) {
	if digest, ok := strings.CutPrefix(name, digestPrefix); ok {
		if len(digest) != 2*sha256.Size {
			return "", nil
		}
		data, err := b.load(ctx, b.recordsDir()+"/"+name, store.MaxRecord+binary.MaxVarintLen64+2*store.MaxRecord)
		if err != nil {
			return "", err
		}
		key, _, ok := splitKeyed(data)
		if !ok || len(key) <= maxHexKey || b.recordKey(key) != b.recordsDir()+"/"+name {
			return "", nil
		}
		return key, nil
	}
	key, err := hex.DecodeString(name)
	if err != nil || len(key) > maxHexKey {
		return "", nil
	}
	return string(key), nil
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
