package miniapp

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
)

const (
	sessionVersion   = 2
	sessionHeaderLen = 1 + 3*8 + 4 + 16 + accountTagLen
	keyIDLen         = 4
	minKeyLen        = 32
	// maxCookieLen bounds the cookie we try to open; a real one is far
	// smaller (a user name is at most maxFieldLen bytes).
	maxCookieLen = 2048
)

// keyring holds the AEAD keys of the session cookie: the first seals,
// all open.
type keyring struct {
	keys []sealKey
}

type sealKey struct {
	id   [keyIDLen]byte
	aead cipher.AEAD
}

// newKeyring derives one AES-256-GCM key per secret and realm, so that
// handlers of two realms never open each other's cookies, even with the
// same secret. Each cookie names its key by an ID derived likewise, so
// opening tries one key.
func newKeyring(secrets [][]byte, realm string) (*keyring, error) {
	kr := new(keyring)
	for _, secret := range secrets {
		key, err := hkdf.Key(sha256.New, secret, nil, "miniapp session cookie v2\x00"+realm, 32)
		if err != nil {
			return nil, err
		}
		id, err := hkdf.Key(sha256.New, secret, nil, "miniapp session key id v2\x00"+realm, keyIDLen)
		if err != nil {
			return nil, err
		}
		block, err := aes.NewCipher(key)
		if err != nil {
			return nil, err
		}
		aead, err := cipher.NewGCMWithRandomNonce(block)
		if err != nil {
			return nil, err
		}
		kr.keys = append(kr.keys, sealKey{id: [keyIDLen]byte(id), aead: aead})
	}
	return kr, nil
}

// parseKeyring reads the configured secret_key values.
func parseKeyring(values []string, realm string, repl *caddy.Replacer) (*keyring, error) {
	secrets := make([][]byte, 0, len(values))
	for i, v := range values {
		secret, err := decodeSecret(repl.ReplaceKnown(v, ""))
		if err != nil {
			return nil, fmt.Errorf("secret_key %d: %v", i+1, err)
		}
		secrets = append(secrets, secret)
	}
	return newKeyring(secrets, realm)
}

// decodeSecret accepts standard or URL-safe base64, padded or not, of at
// least minKeyLen bytes. The error never repeats the value.
func decodeSecret(s string) ([]byte, error) {
	if s == "" {
		return nil, errors.New("key is empty (is its environment variable set?)")
	}
	s = strings.TrimRight(s, "=")
	for _, enc := range []*base64.Encoding{base64.RawStdEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			if len(b) < minKeyLen {
				return nil, fmt.Errorf("key is %d bytes, at least %d are required", len(b), minKeyLen)
			}
			return b, nil
		}
	}
	return nil, errors.New("key is not base64")
}

// storedKeys is the key set kept in Caddy's storage.
type storedKeys struct {
	Keys []string `json:"keys"`
}

// storedKeysCache keeps the key set last read from each store and
// realm, so a config reload while the store is down keeps its sessions.
var storedKeysCache sync.Map

// keysKey is where the realm's generated key set is stored.
func keysKey(realm string) string { return realmPath(realm) + "/keys.json" }

// loadOrCreateKeyring loads the realm's key set from its store, which
// makes it once when absent, so that instances sharing the store agree
// on one key. When the store fails, the key set this process read before
// is used; without one, there is no safe key to use.
func loadOrCreateKeyring(ctx context.Context, store backend, cacheKey, realm string, logger *zap.Logger) (*keyring, error) {
	data, err := store.keySet(ctx, newKeySet)
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
		secret, err := decodeSecret(k)
		if err != nil {
			return nil, fmt.Errorf("key set: %v", err)
		}
		secrets = append(secrets, secret)
	}
	return newKeyring(secrets, realm)
}

// newKeySet makes a key set of one random key.
func newKeySet() ([]byte, error) {
	return json.Marshal(storedKeys{Keys: []string{base64.RawURLEncoding.EncodeToString(randomBytes(32))}})
}

// storageID names a storage by its type and configuration, so that
// handlers of successive configs find the state kept for it.
func storageID(storage certmagic.Storage) string {
	return fmt.Sprintf("%T:%v", storage, storage)
}

// seal encodes s into a cookie value with the first key. The associated
// data binds it to the cookie's full name and host, so a cookie issued
// under one name (plain HTTP) does not open under another (__Host- over
// HTTPS), nor on another site.
func (kr *keyring) seal(s *session, name, host string) string {
	plain := make([]byte, sessionHeaderLen, sessionHeaderLen+len(s.User))
	plain[0] = sessionVersion
	binary.BigEndian.PutUint64(plain[1:], uint64(s.Issued.Unix()))
	binary.BigEndian.PutUint64(plain[9:], uint64(s.Expires.Unix()))
	binary.BigEndian.PutUint64(plain[17:], uint64(s.LastSeen.Unix()))
	binary.BigEndian.PutUint32(plain[25:], s.Counter)
	copy(plain[29:], s.ID[:])
	copy(plain[45:], s.Account[:])
	plain = append(plain, s.User...)

	k := kr.keys[0]
	sealed := k.aead.Seal(k.id[:], nil, plain, []byte(name+"\x00"+host))
	return base64.RawURLEncoding.EncodeToString(sealed)
}

// open decodes a cookie value. Any value that was not sealed by one of
// the keys for the same name and host, or is malformed, is an error;
// expiry is the caller's to check. One buffer holds the encoded, decoded
// and decrypted bytes.
func (kr *keyring) open(value, name, host string) (*session, error) {
	if len(value) > maxCookieLen {
		return nil, errMalformed
	}
	decoded := base64.RawURLEncoding.DecodedLen(len(value))
	buf := make([]byte, len(value)+2*decoded+len(name)+1+len(host))
	src := buf[:copy(buf, value)]
	raw := buf[len(value) : len(value)+decoded]
	out := buf[len(value)+decoded : len(value)+2*decoded]
	adBytes := buf[len(value)+2*decoded:]
	copy(adBytes[copy(adBytes, name)+1:], host)
	n, err := base64.RawURLEncoding.Decode(raw, src)
	if err != nil || n < keyIDLen {
		return nil, errMalformed
	}
	raw = raw[:n]
	for _, k := range kr.keys {
		if [keyIDLen]byte(raw[:keyIDLen]) != k.id {
			continue
		}
		plain, err := k.aead.Open(out[:0], nil, raw[keyIDLen:], adBytes)
		if err != nil || len(plain) <= sessionHeaderLen || plain[0] != sessionVersion {
			return nil, errMalformed
		}
		return &session{
			Issued:   time.Unix(int64(binary.BigEndian.Uint64(plain[1:])), 0),
			Expires:  time.Unix(int64(binary.BigEndian.Uint64(plain[9:])), 0),
			LastSeen: time.Unix(int64(binary.BigEndian.Uint64(plain[17:])), 0),
			Counter:  binary.BigEndian.Uint32(plain[25:]),
			ID:       [16]byte(plain[29:45]),
			Account:  accountTag(plain[45:sessionHeaderLen]),
			User:     string(plain[sessionHeaderLen:]),
		}, nil
	}
	return nil, errMalformed
}

var errMalformed = errors.New("malformed session cookie")

// randomBytes returns n bytes from the system's secure random source.
func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails; crashes the program if the source does
	return b
}
