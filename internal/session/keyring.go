package session

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/account"
)

const (
	sessionVersion   = 2
	sessionHeaderLen = 1 + 3*8 + 4 + 16 + account.TagLen
	keyIDLen         = 4
	minKeyLen        = 32
	// maxCookieLen bounds the cookie we try to open; a real one is far
	// smaller (a user name is at most account.MaxNameLen bytes).
	maxCookieLen = 2048
)

// Keyring holds the AEAD keys of a realm's cookies: the first seals,
// all open.
type Keyring struct {
	keys []sealKey
}

type sealKey struct {
	id   [keyIDLen]byte
	aead cipher.AEAD
}

// NewKeyring derives one AES-256-GCM key per secret and realm, so that
// handlers of two realms never open each other's cookies, even with the
// same secret. Each cookie names its key by an ID derived likewise, so
// opening tries one key.
func NewKeyring(secrets [][]byte, realm string) (*Keyring, error) {
	if len(secrets) == 0 {
		return nil, errors.New("no keys")
	}
	kr := new(Keyring)
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

// DecodeSecret accepts standard or URL-safe base64, padded or not, of at
// least 32 bytes. The error never repeats the value.
func DecodeSecret(s string) ([]byte, error) {
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

// NewSecret returns a new random secret, encoded as DecodeSecret reads it.
func NewSecret() string {
	return base64.RawURLEncoding.EncodeToString(Random(32))
}

// Seal encodes s into a cookie value with the first key. The associated
// data binds it to the cookie's full name and host, so a cookie issued
// under one name (plain HTTP) does not open under another (__Host- over
// HTTPS), nor on another site.
func (kr *Keyring) Seal(s *Session, name, host string) string {
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

// ErrMalformed is the error of a cookie value that does not open.
var ErrMalformed = errors.New("malformed session cookie")

// Open decodes a cookie value. Any value that was not sealed by one of
// the keys for the same name and host, or is malformed, is ErrMalformed;
// expiry is the caller's to check. One buffer holds the encoded, decoded
// and decrypted bytes.
func (kr *Keyring) Open(value, name, host string) (*Session, error) {
	if len(value) > maxCookieLen {
		return nil, ErrMalformed
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
		return nil, ErrMalformed
	}
	raw = raw[:n]
	for _, k := range kr.keys {
		if [keyIDLen]byte(raw[:keyIDLen]) != k.id {
			continue
		}
		plain, err := k.aead.Open(out[:0], nil, raw[keyIDLen:], adBytes)
		if err != nil || len(plain) <= sessionHeaderLen || plain[0] != sessionVersion {
			return nil, ErrMalformed
		}
		return &Session{
			Issued:   time.Unix(int64(binary.BigEndian.Uint64(plain[1:])), 0),
			Expires:  time.Unix(int64(binary.BigEndian.Uint64(plain[9:])), 0),
			LastSeen: time.Unix(int64(binary.BigEndian.Uint64(plain[17:])), 0),
			Counter:  binary.BigEndian.Uint32(plain[25:]),
			ID:       [16]byte(plain[29:45]),
			Account:  account.Tag(plain[45:sessionHeaderLen]),
			User:     string(plain[sessionHeaderLen:]),
		}, nil
	}
	return nil, ErrMalformed
}
