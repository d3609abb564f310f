package miniapp

import (
	"context"
	"sync"

	"github.com/caddy-miniapp/miniapp/internal/session"
	"github.com/caddy-miniapp/miniapp/store"
	"github.com/caddyserver/caddy/v2"
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

// loadKeys is the handler's key ring: secret_key, or else the realm's
// key set in its store.
func (h *Handler) loadKeys(ctx context.Context, repl *caddy.Replacer) (*session.Keyring, error) {
	if len(h.SecretKeys) > 0 {
		return session.ParseKeys(h.SecretKeys, h.Realm, func(v string) string { return repl.ReplaceKnown(v, "") })
	}
	return loadOrCreateKeyring(ctx, h.shared, h.store.Place()+"\x00"+h.Realm, h.Realm, h.logger)
}
