package passkey

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"iter"
	"slices"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/account"
	"github.com/caddy-miniapp/miniapp/internal/records"
	"github.com/caddy-miniapp/miniapp/internal/session"
	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
	"go.uber.org/zap"
)

// Kind names the records of passkeys (see records.Store.Key).
const Kind = "passkeys"

// key names the store record of the user's passkeys.
func (s *Service) key(user string) string { return s.Records.Key(Kind, user) }

// Service is a realm's passkeys, in its records.
type Service struct {
	// Records are the realm's sealed records.
	Records *records.Store
	// Clock is the handler's clock.
	Clock *session.Clock
	// Logger logs what a user's passkeys could not keep.
	Logger *zap.Logger
	// RPID is passkey_rp_id, Domain the cookie domain (both lower case,
	// or empty), and Name the relying party's name (totp_issuer, or
	// empty): see RelyingParty.
	RPID, Domain, Name string
	// Ended, when set, hears of the sessions a passkey's removal ended,
	// for the apps that signed in through them.
	Ended func(user string, session []byte)
	// Managed, when set, are the accounts managed in the store, whose
	// user handles a sign-in that names no user may hold too.
	Managed func() iter.Seq[*account.Account]
	// byHandle are the configured accounts by their user handle.
	byHandle map[string]*account.Account
}

// SetAccounts makes the accounts known by their user handles, for a
// sign-in that names no user.
func (s *Service) SetAccounts(accounts iter.Seq[*account.Account]) {
	s.byHandle = make(map[string]*account.Account)
	for a := range accounts {
		s.byHandle[string(UserHandle(a))] = a
	}
}

// byUserHandle is the account of a user handle: a configured one, or
// one managed in the store.
func (s *Service) byUserHandle(handle []byte) (*account.Account, bool) {
	if a, ok := s.byHandle[string(handle)]; ok || s.Managed == nil {
		return a, ok
	}
	for a := range s.Managed() {
		if string(UserHandle(a)) == string(handle) {
			return a, true
		}
	}
	return nil, false
}

// Of returns the user's passkeys as this node holds them, and the
// sealed record they came from; a record that does not open is
// records.ErrUnreadable, and signs nobody in.
func (s *Service) Of(user string) ([]Key, []byte, error) {
	key := s.key(user)
	sealed := s.Records.Get(key)
	keys, err := s.open(key, sealed)
	return keys, sealed, err
}

// open opens the sealed passkeys record named key; nil for none.
func (s *Service) open(key string, sealed []byte) ([]Key, error) {
	if sealed == nil {
		return nil, nil
	}
	var keys []Key
	if err := s.Records.Open(key, sealed, &keys); err != nil {
		return nil, err
	}
	return keys, nil
}

// Swap stores the user's passkeys made by change from the current ones
// (see records.Store.Swap); none left removes the record.
func (s *Service) Swap(ctx context.Context, user string, change func([]Key) ([]Key, error)) error {
	key := s.key(user)
	return s.Records.Swap(ctx, key, func(sealed []byte) ([]byte, error) {
		keys, err := s.open(key, sealed)
		if err != nil {
			return nil, err
		}
		next, err := change(keys)
		if err != nil || len(next) == 0 {
			return nil, err
		}
		return s.Records.Seal(key, next), nil
	})
}

// Verifying reports whether the account as it is configured now has a
// passkey that verifies its user, and so a second factor (one that does
// not verify is none, and a user must not be held to it); a record that
// does not open is an error.
func (s *Service) Verifying(acct *account.Account) (bool, error) {
	keys, _, err := s.Of(acct.Name)
	return slices.ContainsFunc(keys, func(k Key) bool { return k.UserVerified && k.Account == acct.Stable.Tag() }), err
}

// Current are the user's passkeys that belong to the account as it is
// configured now (those of an older password hash sign nobody in).
func (s *Service) Current(acct *account.Account) []Key {
	keys, _, _ := s.Of(acct.Name)
	return slices.DeleteFunc(keys, func(k Key) bool { return k.Account != acct.Stable.Tag() })
}

// UserHandle is the account's WebAuthn user handle: derived from its
// stable ID, so a configured account whose password hash changed has
// another (a managed one keeps it), and telling nothing of the user.
func UserHandle(acct *account.Account) []byte {
	sum := sha256.Sum256(append([]byte("miniapp passkey user handle\x00"), acct.Stable[:]...))
	return sum[:16]
}

// user is an account as the WebAuthn library sees it.
type user struct {
	acct  *account.Account
	creds []webauthn.Credential
}

func (u user) WebAuthnID() []byte                         { return UserHandle(u.acct) }
func (u user) WebAuthnName() string                       { return u.acct.Name }
func (u user) WebAuthnDisplayName() string                { return cmp.Or(u.acct.FullName, u.acct.Name) }
func (u user) WebAuthnCredentials() []webauthn.Credential { return u.creds }

// credentials are the account's passkeys that belong to it as it is
// configured now, as the library takes them.
func credentials(acct *account.Account, keys []Key) []webauthn.Credential {
	var out []webauthn.Credential
	for _, k := range keys {
		if k.Account != acct.Stable.Tag() {
			continue
		}
		transports := make([]protocol.AuthenticatorTransport, len(k.Transports))
		for i, t := range k.Transports {
			transports[i] = protocol.AuthenticatorTransport(t)
		}
		out = append(out, webauthn.Credential{ID: k.ID, PublicKey: k.PublicKey, AttestationType: k.AttestationType, Transport: transports,
			Flags:         webauthn.CredentialFlags{UserPresent: true, UserVerified: k.UserVerified, BackupEligible: k.BackupEligible, BackupState: k.BackupState},
			Authenticator: webauthn.Authenticator{AAGUID: k.AAGUID, SignCount: k.SignCount}})
	}
	return out
}

// Owner is the user whose passkey has the credential ID in this realm,
// or empty: a credential ID is unique in a realm.
func (s *Service) Owner(id []byte) string {
	for _, key := range s.Records.Realm.RecordKeys() {
		user, ok := account.RecordUser(Kind, key)
		if !ok || s.key(user) != key {
			continue
		}
		if keys, err := s.open(key, s.Records.Get(key)); err == nil && Find(keys, id) >= 0 {
			return user
		}
	}
	return ""
}

// Rename gives one of the user's passkeys a new name.
func (s *Service) Rename(ctx context.Context, user string, id []byte, name string) (Key, error) {
	var renamed Key
	err := s.Swap(ctx, user, func(keys []Key) ([]Key, error) {
		i := Find(keys, id)
		if i < 0 {
			return nil, ErrNoKey
		}
		keys[i].Name = name
		renamed = keys[i]
		return keys, nil
	})
	return renamed, err
}

// Remove removes the user's passkey and ends the sessions it started.
func (s *Service) Remove(ctx context.Context, user string, id []byte) (Key, error) {
	var removed Key
	err := s.Swap(ctx, user, func(keys []Key) ([]Key, error) {
		i := Find(keys, id)
		if i < 0 {
			return nil, ErrNoKey
		}
		removed = keys[i]
		return append(keys[:i:i], keys[i+1:]...), nil
	})
	if err != nil {
		return removed, err
	}
	s.end(ctx, user, removed.Sessions)
	return removed, nil
}

// fit keeps the user's passkeys within their record's size, forgetting
// the oldest sessions they remember, which the caller ends (logged).
func (s *Service) fit(user string, keys []Key) ([]Session, error) {
	forgot, err := FitSessions(keys, records.MaxData)
	if len(forgot) > 0 {
		s.Logger.Warn("a user's passkeys remember too many sessions for their record: the oldest are ended, so that deleting a passkey still ends every session it started",
			zap.String("user", user), zap.Int("ended", len(forgot)))
	}
	return forgot, err
}

// end ends sessions of the user that a passkey started.
func (s *Service) end(ctx context.Context, user string, sessions []Session) {
	for _, sess := range sessions {
		s.Records.Realm.Revoke(ctx, sess.ID, time.Unix(sess.Expires, 0))
		if s.Ended != nil {
			s.Ended(user, sess.ID[:])
		}
	}
}

// View is a passkey as the profile and the admin API show it.
type View struct {
	// ID is the credential ID, base64url.
	ID string `json:"id"`
	// Name is the user's label for it.
	Name string `json:"name"`
	// Created is when it was registered.
	Created time.Time `json:"created"`
	// LastUsed is when it last signed in, or null.
	LastUsed *time.Time `json:"last_used"`
}

// ViewOf is a passkey as the profile and the admin API show it.
func ViewOf(k Key) View {
	v := View{ID: base64.RawURLEncoding.EncodeToString(k.ID), Name: k.Name, Created: time.Unix(k.Created, 0).UTC()}
	if k.LastUsed != 0 {
		used := time.Unix(k.LastUsed, 0).UTC()
		v.LastUsed = &used
	}
	return v
}

// ParseID reads a passkey ID as the profile shows it: base64url; nil
// when it is not one.
func ParseID(s string) []byte {
	id, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(id) == 0 || len(id) > maxIDLen {
		return nil
	}
	return id
}

// maxIDLen bounds a credential ID (WebAuthn's own limit).
const maxIDLen = 1023
