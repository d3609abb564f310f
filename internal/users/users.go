// Package users keeps the accounts people manage without editing
// config: each a sealed record of the realm's store (user:<name>) that
// every node holds in memory from the change feed, with an immutable
// random ID, its password hash and its generation, and the digest of a
// one-time token (an invite, or a reset) while one is out. It makes
// them, changes and removes them, checks new passwords against the
// rules and hashes them, and uses tokens once. It knows the records
// and the accounts; not HTTP, sessions or cookies: the routes and the
// admin API end what a change ends.
package users

import (
	"bytes"
	"encoding/hex"
	"errors"
	"iter"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/account"
	"github.com/caddy-miniapp/miniapp/internal/records"
	"github.com/caddy-miniapp/miniapp/internal/session"
)

// Key names a user's record.
func Key(name string) string { return keyPrefix + name }

// keyPrefix starts every user's record key.
const keyPrefix = "user:"

// nameForm is what a managed user's name may be: it goes into paths of
// the admin API, command lines and record keys, and never holds the ':'
// of a guest's name.
var nameForm = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$`)

// Record is a managed user as the store keeps it, sealed.
type Record struct {
	// UID is the user's immutable random ID (hex): its records hang on
	// it, never on its password.
	UID         string    `json:"uid"`
	Name        string    `json:"name"`
	Groups      []string  `json:"groups,omitempty"`
	Email       string    `json:"email,omitempty"`
	DisplayName string    `json:"display_name,omitempty"`
	Created     time.Time `json:"created"`
	// Hash is the password hash, none before the invite is used;
	// Generation counts its changes and resets.
	Hash       string `json:"hash,omitempty"`
	Generation uint32 `json:"generation"`
	// Token is the one-time token out for the user, if any.
	Token *Token `json:"token,omitempty"`
}

// Token is a one-time token as the store keeps it: the digest of the
// token, never the token, with what it is for and until when.
type Token struct {
	Digest  string    `json:"digest"`
	Purpose string    `json:"purpose"`
	Expires time.Time `json:"expires"`
}

// The purposes of a token.
const (
	// PurposeInvite sets the first password of a new account.
	PurposeInvite = "invite"
	// PurposeReset sets a new password in place of a lost one.
	PurposeReset = "reset"
)

// Errors of the service, each a one-line reason.
var (
	ErrName       = errors.New("a name is 1 to 64 letters, digits, '.', '_', '@' or '-', starting with a letter or digit")
	ErrInConfig   = errors.New("this account is managed in the server's config")
	ErrExists     = errors.New("a user of this name exists already")
	ErrNoUser     = errors.New("no such user")
	ErrToken      = errors.New("this link is used, expired or not one of ours; ask for a new one")
	ErrUnreadable = errors.New("the user's record does not open (edited in the store, or sealed with a key no longer configured)")
	ErrChanged    = errors.New("the account changed meanwhile (a reset, or removed); sign in again")
)

// Service is a realm's managed users.
type Service struct {
	// Realm names the realm, in account IDs.
	Realm string
	// Records are the realm's sealed records.
	Records *records.Store
	// Config is the realm's accounts of the Caddyfile, whose names the
	// store may not take.
	Config *account.Set
	// Hash is the hash of new passwords: argon2id, or bcrypt.
	Hash Hasher
	// Clock tells the time.
	Clock *session.Clock

	// opened keeps each user's account as made from the sealed record
	// this node holds, made again when the record changes
	mu     sync.RWMutex
	opened map[string]opened
}

// opened is a user's account and the sealed record it was made from.
type opened struct {
	sealed []byte
	acct   *account.Account
}

// Lookup is the account of a managed user, as this node holds its
// record: made once per version of the record.
func (s *Service) Lookup(name string) (*account.Account, bool) {
	sealed := s.Records.Get(Key(name))
	if sealed == nil {
		return nil, false
	}
	s.mu.RLock()
	o, ok := s.opened[name]
	s.mu.RUnlock()
	if ok && bytes.Equal(o.sealed, sealed) {
		return o.acct, true
	}
	rec, err := s.open(name, sealed)
	if err != nil {
		return nil, false
	}
	acct, err := s.accountOf(rec)
	if err != nil {
		return nil, false
	}
	s.mu.Lock()
	if s.opened == nil {
		s.opened = map[string]opened{}
	}
	s.opened[name] = opened{sealed: sealed, acct: acct}
	s.mu.Unlock()
	return acct, true
}

// Exists reports whether the store holds a record of the name as this
// node does, one that opens or not.
func (s *Service) Exists(name string) bool { return s.Records.Get(Key(name)) != nil }

// open opens a user's sealed record.
func (s *Service) open(name string, sealed []byte) (*Record, error) {
	rec := new(Record)
	if err := s.Records.Open(Key(name), sealed, rec); err != nil || rec.Name != name {
		return nil, ErrUnreadable
	}
	return rec, nil
}

// accountOf is the account of a record.
func (s *Service) accountOf(rec *Record) (*account.Account, error) {
	uid, err := hex.DecodeString(rec.UID)
	if err != nil || len(uid) != 16 {
		return nil, ErrUnreadable
	}
	return account.Managed(s.Realm, account.ManagedConfig{Name: rec.Name, UID: [16]byte(uid), Generation: rec.Generation, Hash: rec.Hash,
		Groups: rec.Groups, Email: rec.Email, Full: rec.DisplayName})
}

// Accounts are the managed users' accounts this node holds (a record
// that does not open is left out).
func (s *Service) Accounts() iter.Seq[*account.Account] {
	return func(yield func(*account.Account) bool) {
		for _, key := range s.Records.Realm.RecordKeys() {
			name, ok := strings.CutPrefix(key, keyPrefix)
			if !ok {
				continue
			}
			if acct, ok := s.Lookup(name); ok && !yield(acct) {
				return
			}
		}
	}
}

// Some reports whether the realm has a managed user, as this node holds
// them.
func (s *Service) Some() bool {
	return slices.ContainsFunc(s.Records.Realm.RecordKeys(), func(key string) bool { return strings.HasPrefix(key, keyPrefix) })
}

// Info is a managed user as the operator lists it.
type Info struct {
	Name        string    `json:"name"`
	Groups      []string  `json:"groups"`
	Email       string    `json:"email,omitempty"`
	DisplayName string    `json:"display_name,omitempty"`
	Created     time.Time `json:"created"`
	// Password: the user has set one (an invite still out has none).
	Password bool `json:"password"`
	// Account is the user's account now, for the caller to add what the
	// store's sessions and factors say.
	Account *account.Account `json:"-"`
}

// List is every managed user this node holds, by name; a record that
// does not open is left out.
func (s *Service) List() []Info {
	var out []Info
	for _, key := range s.Records.Realm.RecordKeys() {
		name, ok := strings.CutPrefix(key, keyPrefix)
		if !ok {
			continue
		}
		acct, ok := s.Lookup(name)
		rec, err := s.open(name, s.Records.Get(key))
		if !ok || err != nil {
			continue
		}
		out = append(out, Info{Name: name, Groups: append([]string{}, rec.Groups...), Email: rec.Email, DisplayName: rec.DisplayName,
			Created: rec.Created, Password: rec.Hash != "", Account: acct})
	}
	slices.SortFunc(out, func(a, b Info) int { return strings.Compare(a.Name, b.Name) })
	return out
}
