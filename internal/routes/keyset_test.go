package routes

import (
	"context"
	"errors"
	"testing"

	"github.com/caddy-miniapp/miniapp/internal/session"
	"github.com/caddy-miniapp/miniapp/store"
	"github.com/caddy-miniapp/miniapp/store/storage"
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
)

// brokenStorage is a file storage that can fail every call.
type brokenStorage struct {
	certmagic.FileStorage
	broken bool
}

func (b *brokenStorage) Load(ctx context.Context, key string) ([]byte, error) {
	if b.broken {
		return nil, errors.New("storage down")
	}
	return b.FileStorage.Load(ctx, key)
}

func TestKeyring(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	join := func(st certmagic.Storage) *store.Realm {
		r, err := store.Join(ctx, storage.New(st), store.Options{Realm: "keys", Every: 1e9, Remember: 1e9, Now: new(session.Clock).Now, Logger: zap.NewNop()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = r.Release() })
		return r
	}
	bs := &brokenStorage{FileStorage: certmagic.FileStorage{Path: dir}}
	first, err := loadOrCreateKeyring(ctx, join(bs), "test-place\x00keys", "keys", zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	again, err := loadOrCreateKeyring(ctx, join(&certmagic.FileStorage{Path: dir}), "other-place\x00keys", "keys", zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	s := &session.Session{User: "ada"}
	if _, err := again.Open(session.PurposeSession, first.Seal(session.PurposeSession, s, "c", "h"), "c", "h"); err != nil {
		t.Errorf("a second node of the store made another key set: %v", err)
	}
	bs.broken = true
	cached, err := loadOrCreateKeyring(ctx, join(bs), "test-place\x00keys", "keys", zap.NewNop())
	if err != nil {
		t.Fatalf("the store down after a first read: %v, want the key set read before", err)
	}
	if _, err := cached.Open(session.PurposeSession, first.Seal(session.PurposeSession, s, "c", "h"), "c", "h"); err != nil {
		t.Error("the key set read before was not used")
	}
	if _, err := loadOrCreateKeyring(ctx, join(bs), "never-read\x00keys", "keys", zap.NewNop()); err == nil {
		t.Error("the store down and no key set read before: want an error, not a key of its own")
	}
}
