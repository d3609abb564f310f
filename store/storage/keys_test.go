package storage

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/caddy-miniapp/miniapp/internal/session"
	"github.com/caddyserver/certmagic"
)

// lockingStorage is a file storage whose Lock fails the first failures
// times, as the file storage does when it reads a lock file that another
// instance is still writing.
type lockingStorage struct {
	*certmagic.FileStorage
	failures int
	onFail   func()
}

func (s *lockingStorage) Lock(ctx context.Context, name string) error {
	if s.failures > 0 {
		s.failures--
		if s.onFail != nil {
			s.onFail()
		}
		return errors.New("decoding lockfile contents: unexpected EOF")
	}
	return s.FileStorage.Lock(ctx, name)
}

// TestStorageKeySetRetriesLock makes the key set after failed locks,
// takes the one another instance made meanwhile, and gives up when the
// lock never succeeds.
func TestStorageKeySetRetriesLock(t *testing.T) {
	ctx := context.Background()
	create := func() ([]byte, error) { return []byte(`{"keys":["` + session.NewSecret() + `"]}`), nil }
	flaky := &lockingStorage{FileStorage: &certmagic.FileStorage{Path: t.TempDir()}, failures: 2}
	if _, err := openStorageBackend(t, flaky, new(session.Clock)).KeySet(ctx, create); err != nil || flaky.failures != 0 {
		t.Fatalf("key set not made after two failed locks: %v", err)
	}

	other := &certmagic.FileStorage{Path: t.TempDir()}
	theirs, _ := create()
	racing := &lockingStorage{FileStorage: other, failures: 100, onFail: func() { _ = other.Store(ctx, realmPath("miniapp")+"/keys.json", theirs) }}
	ours, err := openStorageBackend(t, racing, new(session.Clock)).KeySet(ctx, create)
	if err != nil || !bytes.Equal(ours, theirs) {
		t.Fatalf("did not take the other instance's key set: %v", err)
	}
	never := &lockingStorage{FileStorage: &certmagic.FileStorage{Path: t.TempDir()}, failures: 100}
	if _, err := openStorageBackend(t, never, new(session.Clock)).KeySet(ctx, create); err == nil {
		t.Error("no error when the lock never succeeds")
	}
}
