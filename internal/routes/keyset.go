package routes

import (
	"context"
	"sync"

	"github.com/caddy-miniapp/miniapp/internal/session"
	"github.com/caddy-miniapp/miniapp/store"
	"go.uber.org/zap"
)

// storedKeysCache keeps the key set last read from each store and
// realm, so a config reload while the store is down keeps its sessions.
var storedKeysCache sync.Map

// loadOrCreateKeyring loads the realm's key set from its store, which
// makes it once when absent, so that instances sharing the store agree
// on one key. When the store fails, the key set this process read before
// is used; without one, there is no safe key to use.
func loadOrCreateKeyring(ctx context.Context, shared *store.Realm, cacheKey, realm string, logger *zap.Logger) (*session.Keyring, error) {
	data, err := shared.KeySet(ctx, session.NewKeySet)
	if err != nil {
		cached, ok := storedKeysCache.Load(cacheKey)
		if !ok {
			return nil, err
		}
		logger.Warn("reading the key set from the store failed; using the one read before", zap.Error(err))
		data = cached.([]byte)
	}
	storedKeysCache.Store(cacheKey, data)
	return session.OpenKeySet(data, realm)
}
