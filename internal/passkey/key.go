// Package passkey is the accounts' passkeys (WebAuthn): the keys an
// account keeps in the realm's sealed records, the relying party of a
// site, and the ceremonies that register a key and sign in with one. It
// knows the records, the accounts and the WebAuthn library; not
// sessions, cookies or how a sign-in ends.
package passkey

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"

	"github.com/caddy-miniapp/miniapp/internal/account"
)

// Key is one of an account's WebAuthn credentials, as its record in
// the store keeps it: public values only (the public key, never a
// secret), sealed with the account's other records so that an edit in
// the store is refused.
type Key struct {
	// ID is the credential ID the authenticator chose.
	ID []byte `json:"id"`
	// PublicKey is the credential's COSE public key.
	PublicKey []byte `json:"public_key"`
	// AttestationType is the attestation the registration carried
	// ("none" here).
	AttestationType string `json:"attestation_type,omitempty"`
	// Transports are how the browser reaches the authenticator.
	Transports []string `json:"transports,omitempty"`
	// The authenticator's flags at registration.
	UserVerified   bool `json:"user_verified,omitempty"`
	BackupEligible bool `json:"backup_eligible,omitempty"`
	BackupState    bool `json:"backup_state,omitempty"`
	// AAGUID names the authenticator's model.
	AAGUID []byte `json:"aaguid,omitempty"`
	// SignCount is the signature counter last seen: one that goes back
	// on a key that counts is a cloned key.
	SignCount uint32 `json:"sign_count,omitempty"`
	// Account tags the account (and so the password hash) it was
	// registered for: after a new hash it no longer signs in.
	Account account.Tag `json:"account"`
	// Name is the user's label for it.
	Name string `json:"name"`
	// Created and LastUsed are Unix seconds; LastUsed is 0 before its
	// first sign-in.
	Created  int64 `json:"created"`
	LastUsed int64 `json:"last_used,omitempty"`
	// Sessions are the sessions it started that may still live, with
	// when they expire: deleting the passkey ends them.
	Sessions []Session `json:"sessions,omitempty"`
}

// Session is a session a passkey started.
type Session struct {
	ID      [16]byte `json:"id"`
	Expires int64    `json:"expires"`
}

// Bounds of an account's passkeys.
const (
	// MaxKeys is how many passkeys an account may have.
	MaxKeys = 20
	// MaxPasskeyName bounds a passkey's name, in bytes.
	MaxPasskeyName = 64
	// maxPasskeySessions bounds the sessions a passkey remembers.
	maxPasskeySessions = 50
)

// ErrNoKey is a passkey ID the account does not have.
var ErrNoKey = errors.New("no such passkey")

// Find returns the index of the passkey with the ID, or -1.
func Find(keys []Key, id []byte) int {
	return slices.IndexFunc(keys, func(k Key) bool { return bytes.Equal(k.ID, id) })
}

// Started records a session the passkey started, keeping the newest
// maxPasskeySessions that have not expired at now, and returns the live
// ones it no longer keeps: the caller ends them, so that deleting the
// passkey still ends every session it started.
func (k *Key) Started(id [16]byte, expires, now int64) []Session {
	k.Sessions = slices.DeleteFunc(k.Sessions, func(s Session) bool { return s.Expires <= now })
	k.Sessions = append(k.Sessions, Session{ID: id, Expires: expires})
	n := len(k.Sessions)
	if n <= maxPasskeySessions {
		return nil
	}
	dropped := slices.Clone(k.Sessions[:n-maxPasskeySessions])
	k.Sessions = k.Sessions[n-maxPasskeySessions:]
	return dropped
}

// ErrFull is a set of passkeys too large for its record even
// without the sessions they remember.
var ErrFull = errors.New("the passkeys do not fit in their record; delete one first")

// FitSessions forgets the sessions the passkeys remember that expire
// first, across all of them, until the passkeys encode to at most limit
// bytes of JSON, and returns them: a record must stay within the store's
// limit however often they sign in, and the caller ends the sessions it
// forgot, so that deleting a passkey still ends every session it
// started.
func FitSessions(keys []Key, limit int) ([]Session, error) {
	size := jsonSize(keys)
	var forgot []Session
	for size > limit {
		// each passkey's sessions are in the order they started
		oldest := -1
		for i, k := range keys {
			if len(k.Sessions) > 0 && (oldest < 0 || k.Sessions[0].Expires < keys[oldest].Sessions[0].Expires) {
				oldest = i
			}
		}
		if oldest < 0 {
			return forgot, ErrFull
		}
		size -= jsonSize(keys[oldest].Sessions[0]) + 1 // and its comma
		forgot = append(forgot, keys[oldest].Sessions[0])
		keys[oldest].Sessions = keys[oldest].Sessions[1:]
		if size <= limit {
			// the estimate said so; the encoding decides
			size = jsonSize(keys)
		}
	}
	return forgot, nil
}

// jsonSize is the length of v's JSON.
func jsonSize(v any) int {
	b, _ := json.Marshal(v) // plain values: never fails
	return len(b)
}

// CheckName refuses a name that is too long or not plain text.
func CheckName(name string) error {
	if len(name) > MaxPasskeyName {
		return errors.New("name is longer than 64 bytes")
	}
	return account.CheckText(name)
}
