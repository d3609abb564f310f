package miniapp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/caddy-miniapp/miniapp/internal/session"
	"github.com/caddy-miniapp/miniapp/store"
	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
)

// parseKeyring reads the configured secret_key values.
func parseKeyring(values []string, realm string, repl *caddy.Replacer) (*session.Keyring, error) {
	secrets := make([][]byte, 0, len(values))
	for i, v := range values {
		secret, err := session.DecodeSecret(repl.ReplaceKnown(v, ""))
		if err != nil {
			return nil, fmt.Errorf("secret_key %d: %v", i+1, err)
		}
		secrets = append(secrets, secret)
	}
	return session.NewKeyring(secrets, realm)
}

// storedKeys is the key set kept in the store.
type storedKeys struct {
	Keys []string `json:"keys"`
}

// storedKeysCache keeps the key set last read from each store and
// realm, so a config reload while the store is down keeps its sessions.
var storedKeysCache sync.Map

// loadOrCreateKeyring loads the realm's key set from its store, which
// makes it once when absent, so that instances sharing the store agree
// on one key. When the store fails, the key set this process read before
// is used; without one, there is no safe key to use.
func loadOrCreateKeyring(ctx context.Context, shared *store.Realm, cacheKey, realm string, logger *zap.Logger) (*session.Keyring, error) {
	data, err := shared.KeySet(ctx, newKeySet)
	if err != nil {
		cached, ok := storedKeysCache.Load(cacheKey)
		if !ok {
			return nil, err
		}
		logger.Warn("reading the key set from the store failed; using the one read before", zap.Error(err))
		data = cached.([]byte)
	}
	storedKeysCache.Store(cacheKey, data)
	var stored storedKeys
	if err := json.Unmarshal(data, &stored); err != nil {
		return nil, fmt.Errorf("key set: %v", err)
	}
	if len(stored.Keys) == 0 {
		return nil, errors.New("the key set holds no keys")
	}
	secrets := make([][]byte, 0, len(stored.Keys))
	for _, k := range stored.Keys {
		secret, err := session.DecodeSecret(k)
		if err != nil {
			return nil, fmt.Errorf("key set: %v", err)
		}
		secrets = append(secrets, secret)
	}
	return session.NewKeyring(secrets, realm)
}

// newKeySet makes a key set of one random key.
func newKeySet() ([]byte, error) {
	return json.Marshal(storedKeys{Keys: []string{session.NewSecret()}})
}
