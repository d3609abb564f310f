// Package records keeps an account's durable records (its second
// factor, its passkeys) in the realm's store, sealed whole with the
// realm's keys under a purpose of their own and bound to their name:
// never in clear, and a record edited in the store does not open. It
// knows the store and the key ring, not what a record holds, nor HTTP.
package records

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/caddy-miniapp/miniapp/internal/account"
	"github.com/caddy-miniapp/miniapp/internal/session"
	"github.com/caddy-miniapp/miniapp/store"
	"go.uber.org/zap"
)

// ErrUnreadable is a record that does not open: edited in the store, or
// sealed with a key no longer configured.
var ErrUnreadable = errors.New("the record does not open (edited in the store, or sealed with a key no longer configured)")

// StoreFailed is a store that did not answer: a change is made for
// every node, or not at all.
type StoreFailed struct{ Err error }

func (e StoreFailed) Error() string { return "the store did not answer: " + e.Err.Error() }

func (e StoreFailed) Unwrap() error { return e.Err }

// MaxData bounds a record's JSON so that, sealed (base64 of the key ID,
// nonce, ciphertext and tag), it stays within store.MaxRecord.
const MaxData = store.MaxRecord*3/4 - 64

// Store is the realm's records, sealed with its keys.
type Store struct {
	// Realm is the realm's shared state.
	Realm *store.Realm
	// Keys seal and open the records.
	Keys *session.Keyring
	// Logger logs what Reseal did.
	Logger *zap.Logger
	// Accounts are the realm's accounts, which name their records (see
	// Key).
	Accounts Accounts
}

// Accounts finds an account by its user name.
type Accounts interface {
	Lookup(name string) (*account.Account, bool)
}

// Key names the user's record of a kind: the account's (see
// account.Account.RecordKey), or kind:<user> for a name without one
// (a guest, a user no longer configured).
func (s *Store) Key(kind, user string) string {
	if acct, ok := s.Accounts.Lookup(user); ok {
		return acct.RecordKey(kind)
	}
	return kind + ":" + user
}

// Get is the sealed record named key as this node holds it, nil for
// none.
func (s *Store) Get(key string) []byte { return s.Realm.Record(key) }

// Open opens the sealed record named key into v; a record that does not
// open is ErrUnreadable.
func (s *Store) Open(key string, sealed []byte, v any) error {
	data, _, err := s.Keys.OpenData(session.PurposeRecord, string(sealed), key)
	if err != nil || json.Unmarshal(data, v) != nil {
		return ErrUnreadable
	}
	return nil
}

// Seal seals v as the record named key, with the first key.
func (s *Store) Seal(key string, v any) []byte {
	data, _ := json.Marshal(v) // plain values: never fails
	return []byte(s.Keys.SealData(session.PurposeRecord, data, key))
}

// Swap replaces the record named key with what next makes of its sealed
// value as this node holds it (nil: none; a nil result removes it),
// reading the store again and trying anew when another node changed it
// meanwhile; next's error ends it. A store that does not answer is
// StoreFailed.
func (s *Store) Swap(ctx context.Context, key string, next func(sealed []byte) ([]byte, error)) error {
	sealed := s.Realm.Record(key)
	for range 3 {
		value, err := next(sealed)
		if err != nil {
			return err
		}
		ok, err := s.Realm.SwapRecord(ctx, key, sealed, value)
		if err != nil {
			return StoreFailed{err}
		}
		if ok {
			return nil
		}
		if sealed, err = s.Realm.ReadRecord(ctx, key); err != nil {
			return StoreFailed{err}
		}
	}
	return StoreFailed{errors.New("the record kept changing")}
}

// Reseal seals again with the first key the records this node holds
// that an older key sealed, so that the older key may go once every node
// has started with the new one first. A record no key opens (another
// site's of the realm, or an edited one) is left as it is.
func (s *Store) Reseal(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 2*store.Timeout)
	defer cancel()
	resealed := 0
	for _, key := range s.Realm.RecordKeys() {
		sealed := s.Realm.Record(key)
		data, current, err := s.Keys.OpenData(session.PurposeRecord, string(sealed), key)
		if sealed == nil || err != nil || current {
			continue
		}
		value := []byte(s.Keys.SealData(session.PurposeRecord, data, key))
		if ok, err := s.Realm.SwapRecord(ctx, key, sealed, value); ok && err == nil {
			resealed++
		}
	}
	if resealed > 0 {
		s.Logger.Info("records (second factors, passkeys) sealed again with the first secret key", zap.Int("records", resealed))
	}
}
