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
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/account"
)

const (
	// sessionVersion 6 adds a guest's claims after the user name
	// (written only for a guest: other sessions stay version 5, which
	// older nodes open); 5 added the method to version 4, which added
	// the factors to version 3; all still open (a password's session, of
	// one factor for version 3)
	sessionVersion   = 6
	methodVersion    = 5
	v3HeaderLen      = 1 + 3*8 + 4 + 8 + 16 + account.TagLen
	v4HeaderLen      = v3HeaderLen + 1
	sessionHeaderLen = v4HeaderLen + 1
	keyIDLen         = 4
	minKeyLen        = 32
	// maxCookieLen bounds the cookie we try to open; a real one is far
	// smaller (a user name is at most account.MaxNameLen bytes).
	maxCookieLen = 2048
)

// Purpose is what a sealed value is for. Each purpose has keys of its
// own, derived from the realm's secrets, and is part of what the seal
// authenticates: a value sealed for one purpose never opens as another.
type Purpose byte

// The purposes of the values a realm seals.
const (
	// PurposeSession seals the session cookie.
	PurposeSession Purpose = iota + 1
	// PurposeDevice seals the device cookie of a browser that signed in
	// before.
	PurposeDevice
	// PurposePending seals the cookie of a sign-in that waits for its
	// second factor.
	PurposePending
	// PurposeEnrollment seals a second factor being set up, until its
	// first code confirms it.
	PurposeEnrollment
	// PurposeRecord seals an account's durable records in the store.
	PurposeRecord
	// PurposeCeremony seals a passkey ceremony's challenge between its
	// beginning and its end.
	PurposeCeremony
	// PurposeOIDC seals the OpenID Connect provider's authorization
	// requests, codes and tokens.
	PurposeOIDC
	// PurposeSignInWith seals a sign-in through another provider
	// between its start and the provider's callback.
	PurposeSignInWith
	// PurposeTrust seals the cookie of a browser trusted for the second
	// factor.
	PurposeTrust
	purposes = iota
)

// String names the purpose, as its key derivation does.
func (p Purpose) String() string {
	switch p {
	case PurposeSession:
		return "session"
	case PurposeDevice:
		return "device"
	case PurposePending:
		return "pending"
	case PurposeEnrollment:
		return "enrollment"
	case PurposeRecord:
		return "record"
	case PurposeCeremony:
		return "ceremony"
	case PurposeOIDC:
		return "oidc"
	case PurposeSignInWith:
		return "sign-in-with"
	case PurposeTrust:
		return "trust"
	}
	return "purpose " + strconv.Itoa(int(p))
}

// Keyring holds a realm's AEAD keys, per purpose: the first secret's
// seal, all secrets' open.
type Keyring struct {
	keys [purposes + 1][]sealKey
}

type sealKey struct {
	id   [keyIDLen]byte
	aead cipher.AEAD
}

// NewKeyring derives one AES-256-GCM key per secret, purpose and realm,
// so that handlers of two realms never open each other's values, even
// with the same secret, and no purpose opens another's. Each value names
// its key by an ID derived likewise, so opening tries one key.
func NewKeyring(secrets [][]byte, realm string) (*Keyring, error) {
	if len(secrets) == 0 {
		return nil, errors.New("no keys")
	}
	kr := new(Keyring)
	for p := PurposeSession; p <= purposes; p++ {
		for _, secret := range secrets {
			info := "miniapp " + p.String() + " v3\x00" + realm
			key, err := hkdf.Key(sha256.New, secret, nil, info, 32)
			if err != nil {
				return nil, err
			}
			id, err := hkdf.Key(sha256.New, secret, nil, info+"\x00key id", keyIDLen)
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
			kr.keys[p] = append(kr.keys[p], sealKey{id: [keyIDLen]byte(id), aead: aead})
		}
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

// Seal encodes s into a value for the purpose with the first key. The
// associated data binds it to the purpose, the cookie's full name and
// host, so a cookie issued under one name (plain HTTP) does not open
// under another (__Host- over HTTPS), nor on another site.
func (kr *Keyring) Seal(p Purpose, s *Session, name, host string) string {
	plain := make([]byte, sessionHeaderLen, sessionHeaderLen+len(s.User))
	plain[0] = methodVersion
	binary.BigEndian.PutUint64(plain[1:], uint64(s.Issued.Unix()))
	binary.BigEndian.PutUint64(plain[9:], uint64(s.Expires.Unix()))
	binary.BigEndian.PutUint64(plain[17:], uint64(s.LastSeen.Unix()))
	binary.BigEndian.PutUint32(plain[25:], s.Counter)
	binary.BigEndian.PutUint64(plain[29:], s.Generation)
	copy(plain[37:], s.ID[:])
	copy(plain[53:], s.Account[:])
	plain[v3HeaderLen], plain[v4HeaderLen] = s.Factors, byte(s.Method)
	plain = append(plain, s.User...)
	if g := s.Guest; g != nil {
		plain[0] = sessionVersion
		plain = append(append(append(append(append(append(plain, 0), g.Name...), 0), g.Email...), 0), strings.Join(g.Groups, ",")...)
	}
	return kr.seal(p, plain, name, host)
}

// seal encrypts plain for the purpose with the first key, bound to name
// and host.
func (kr *Keyring) seal(p Purpose, plain []byte, name, host string) string {
	ad := make([]byte, 0, 2+len(name)+len(host))
	ad = append(append(append(append(ad, byte(p)), name...), 0), host...)
	k := kr.keys[p][0]
	sealed := k.aead.Seal(k.id[:], nil, plain, ad)
	return base64.RawURLEncoding.EncodeToString(sealed)
}

// SealData seals data for the purpose, bound to name: it opens with
// OpenData for the same purpose and name only.
func (kr *Keyring) SealData(p Purpose, data []byte, name string) string {
	return kr.seal(p, data, name, "")
}

// maxDataLen bounds the sealed data OpenData tries to open.
const maxDataLen = 128 << 10

// OpenData opens what SealData sealed for the purpose and name, and
// reports whether it was sealed with the first key (a value sealed with
// another is to be sealed again before that key goes).
func (kr *Keyring) OpenData(p Purpose, value, name string) (data []byte, current bool, err error) {
	if len(value) > maxDataLen || p < PurposeSession || p > purposes {
		return nil, false, errMalformed
	}
	raw, err := sealedEncoding.DecodeString(value)
	if err != nil || len(raw) < keyIDLen {
		return nil, false, errMalformed
	}
	ad := append(append([]byte{byte(p)}, name...), 0)
	for i, k := range kr.keys[p] {
		if [keyIDLen]byte(raw[:keyIDLen]) != k.id {
			continue
		}
		data, err := k.aead.Open(nil, nil, raw[keyIDLen:], ad)
		if err != nil {
			return nil, false, errMalformed
		}
		return data, i == 0, nil
	}
	return nil, false, errMalformed
}

// openBuffers are Open's buffers; one that a long Host header grew
// beyond maxKeptBuffer is not kept.
var openBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// maxKeptBuffer is the largest buffer openBuffers keeps: a cookie of
// maxCookieLen decoded twice, with room for its name and host.
const maxKeptBuffer = 8 << 10

// sealedEncoding decodes sealed values: base64url without padding, and
// strict, so that each sealed value has one spelling (a lenient decoder
// ignores the unused bits of the last character, which would let one
// cookie be sent up to 16 ways).
var sealedEncoding = base64.RawURLEncoding.Strict()

// errMalformed is the error of a value that does not open.
var errMalformed = errors.New("malformed session cookie")

// Open decodes a value sealed for the purpose. Any value that was not
// sealed by one of the keys for the same purpose, name and host, or is
// malformed, is errMalformed; expiry is the caller's to check. One buffer,
// kept between calls, holds the encoded, decoded and decrypted bytes and
// the associated data.
func (kr *Keyring) Open(p Purpose, value, name, host string) (*Session, error) {
	if len(value) > maxCookieLen || p < PurposeSession || p > purposes {
		return nil, errMalformed
	}
	decoded := base64.RawURLEncoding.DecodedLen(len(value))
	scratch := openBuffers.Get().(*[]byte)
	defer func() {
		if cap(*scratch) <= maxKeptBuffer {
			openBuffers.Put(scratch)
		}
	}()
	size := len(value) + 2*decoded
	buf := slices.Grow((*scratch)[:0], size+1+len(name)+1+len(host))[:size]
	*scratch = buf
	src := buf[:copy(buf, value)]
	raw := buf[len(value) : len(value)+decoded]
	out := buf[len(value)+decoded : size]
	adBytes := append(append(append(append(buf[size:size], byte(p)), name...), 0), host...)
	n, err := sealedEncoding.Decode(raw, src)
	if err != nil || n < keyIDLen {
		return nil, errMalformed
	}
	raw = raw[:n]
	for _, k := range kr.keys[p] {
		if [keyIDLen]byte(raw[:keyIDLen]) != k.id {
			continue
		}
		plain, err := k.aead.Open(out[:0], nil, raw[keyIDLen:], adBytes)
		if err != nil || len(plain) <= v3HeaderLen || plain[0] < 3 || plain[0] > sessionVersion {
			return nil, errMalformed
		}
		header, factors, method := v3HeaderLen, byte(1), MethodPassword
		switch plain[0] {
		case 4:
			header, factors = v4HeaderLen, plain[v3HeaderLen]
		case methodVersion, sessionVersion:
			header, factors, method = sessionHeaderLen, plain[v3HeaderLen], Method(plain[v4HeaderLen])
		}
		if len(plain) <= header {
			return nil, errMalformed
		}
		user, guest := string(plain[header:]), (*Guest)(nil)
		if plain[0] == sessionVersion {
			parts := strings.Split(user, "\x00")
			if len(parts) != 4 {
				return nil, errMalformed
			}
			user, guest = parts[0], &Guest{Name: parts[1], Email: parts[2]}
			if parts[3] != "" {
				guest.Groups = strings.Split(parts[3], ",")
			}
		}
		return &Session{
			Guest:      guest,
			Factors:    factors,
			Method:     method,
			Issued:     time.Unix(int64(binary.BigEndian.Uint64(plain[1:])), 0),
			Expires:    time.Unix(int64(binary.BigEndian.Uint64(plain[9:])), 0),
			LastSeen:   time.Unix(int64(binary.BigEndian.Uint64(plain[17:])), 0),
			Counter:    binary.BigEndian.Uint32(plain[25:]),
			Generation: binary.BigEndian.Uint64(plain[29:]),
			ID:         [16]byte(plain[37:53]),
			Account:    account.Tag(plain[53:v3HeaderLen]),
			User:       user,
		}, nil
	}
	return nil, errMalformed
}
