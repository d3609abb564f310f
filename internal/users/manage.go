package users

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/account"
	"github.com/caddy-miniapp/miniapp/internal/records"
	"github.com/caddy-miniapp/miniapp/internal/session"
)

// DefaultValid is how long an invite or a reset link works by default;
// MaxValid bounds it.
const (
	DefaultValid = 7 * 24 * time.Hour
	MaxValid     = 30 * 24 * time.Hour
)

// Profile is what describes a user; a nil field of a change is left as
// it is.
type Profile struct {
	Groups      *[]string
	Email       *string
	DisplayName *string
}

// check refuses a profile that headers, pages and logs could not carry.
func (p Profile) check() error {
	if p.Groups != nil {
		for _, g := range *p.Groups {
			if g == "" || len(g) > 64 || strings.ContainsAny(g, ", ") || account.CheckText(g) != nil {
				return fmt.Errorf("group %q must be 1 to 64 characters without commas, spaces or control characters", g)
			}
		}
	}
	if p.Email != nil && *p.Email != "" {
		if local, domain, ok := strings.Cut(*p.Email, "@"); !ok || local == "" || domain == "" || strings.ContainsAny(*p.Email, ", ") ||
			len(*p.Email) > 254 || account.CheckText(*p.Email) != nil {
			return errors.New("email must be an address")
		}
	}
	if p.DisplayName != nil && (len(*p.DisplayName) > 128 || account.CheckText(*p.DisplayName) != nil) {
		return errors.New("display_name must be at most 128 bytes without control characters")
	}
	return nil
}

// apply sets the profile's fields on the record.
func (p Profile) apply(rec *Record) {
	if p.Groups != nil {
		rec.Groups = append([]string{}, *p.Groups...)
	}
	if p.Email != nil {
		rec.Email = *p.Email
	}
	if p.DisplayName != nil {
		rec.DisplayName = *p.DisplayName
	}
}

// Create makes a user without a password, and its invite: a one-time
// token, good for valid (DefaultValid when 0), of which the store keeps
// only the digest.
func (s *Service) Create(ctx context.Context, name string, p Profile, valid time.Duration) (string, error) {
	switch {
	case !nameForm.MatchString(name):
		return "", ErrName
	case s.Config.LikeConfigured(name):
		return "", ErrInConfig
	case s.likeManaged(name):
		return "", ErrExists
	}
	if err := p.check(); err != nil {
		return "", err
	}
	token, t, err := s.newToken(PurposeInvite, valid)
	if err != nil {
		return "", err
	}
	rec := &Record{UID: hex.EncodeToString(session.Random(16)), Name: name, Created: s.Clock.Now().UTC().Truncate(time.Second), Token: t}
	p.apply(rec)
	err = s.Records.Swap(ctx, Key(name), func(sealed []byte) ([]byte, error) {
		if sealed != nil {
			return nil, ErrExists
		}
		return s.Records.Seal(Key(name), rec), nil
	})
	if err != nil {
		return "", err
	}
	return token, s.index(ctx, t, rec)
}

// likeManaged reports whether a managed user's name is the name in
// another case: two accounts are never told apart by case alone.
func (s *Service) likeManaged(name string) bool {
	for _, key := range s.Records.Realm.RecordKeys() {
		if other, ok := strings.CutPrefix(key, keyPrefix); ok && other != name && strings.EqualFold(other, name) {
			return true
		}
	}
	return false
}

// Update changes what describes a user.
func (s *Service) Update(ctx context.Context, name string, p Profile) error {
	if err := p.check(); err != nil {
		return err
	}
	return s.swap(ctx, name, func(rec *Record) error {
		p.apply(rec)
		return nil
	})
}

// Remove removes a user and its token, and returns its account as it
// was, whose sessions and records the caller ends.
func (s *Service) Remove(ctx context.Context, name string) (*account.Account, error) {
	var gone *Record
	err := s.Records.Swap(ctx, Key(name), func(sealed []byte) ([]byte, error) {
		if sealed == nil {
			return nil, ErrNoUser
		}
		rec, err := s.open(name, sealed)
		if err != nil {
			// an unreadable record goes too: the operator removes it
			gone = nil
			return nil, nil
		}
		gone = rec
		return nil, nil
	})
	if err != nil || gone == nil {
		return nil, err
	}
	s.unindex(ctx, gone.Token)
	return s.accountOf(gone)
}

// Reset ends a user's password (and with it every session) and makes a
// one-time token to set a new one, good for valid.
func (s *Service) Reset(ctx context.Context, name string, valid time.Duration) (string, error) {
	token, t, err := s.newToken(PurposeReset, valid)
	if err != nil {
		return "", err
	}
	var old *Token
	var rec *Record
	err = s.swap(ctx, name, func(r *Record) error {
		old, rec = r.Token, r
		r.Hash, r.Token = "", t
		r.Generation++
		return nil
	})
	if err != nil {
		return "", err
	}
	s.unindex(ctx, old)
	return token, s.index(ctx, t, rec)
}

// SetPassword sets a user's new password hash (its rules checked by
// the caller) for the account as the caller saw it (its immutable ID
// and generation): a new generation, so that its other sessions end; a
// token still out is used up. An account reset, or removed and made
// again, since is ErrChanged.
func (s *Service) SetPassword(ctx context.Context, seen *account.Account, hash string) (*account.Account, error) {
	var old *Token
	var rec *Record
	err := s.swap(ctx, seen.Name, func(r *Record) error {
		if r.UID != seen.UID || r.Generation != seen.Generation {
			return ErrChanged
		}
		old, rec = r.Token, r
		r.Hash, r.Token = hash, nil
		r.Generation++
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.unindex(ctx, old)
	return s.accountOf(rec)
}

// Redeemed is a token that opened: the user it is for, and its purpose.
type Redeemed struct {
	Name, Purpose string
	uid, digest   string
}

// Redeem finds the user of a token that is live: its own, not used, not
// expired, its user not removed or reset since. Nothing is used up: Use
// does that, once the new password is checked and hashed.
func (s *Service) Redeem(ctx context.Context, token string) (Redeemed, error) {
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(raw) != tokenBytes {
		return Redeemed{}, ErrToken
	}
	digest := digestOf(token)
	sealed, err := s.stored(ctx, indexKey(digest))
	if err != nil {
		return Redeemed{}, err
	}
	var ix tokenIndex
	if sealed == nil || s.Records.Open(indexKey(digest), sealed, &ix) != nil {
		return Redeemed{}, ErrToken
	}
	sealed, err = s.stored(ctx, Key(ix.Name))
	if err != nil {
		return Redeemed{}, err
	}
	rec, err := s.open(ix.Name, sealed)
	if sealed == nil || err != nil || !s.live(rec, ix.UID, digest) {
		// a token no longer out (expired, replaced, its user gone)
		// needs no index
		s.unindex(ctx, &Token{Digest: digest})
		return Redeemed{}, ErrToken
	}
	return Redeemed{Name: rec.Name, Purpose: rec.Token.Purpose, uid: ix.UID, digest: digest}, nil
}

// Use uses a redeemed token once to set the user's password hash (a
// new generation): the record swapped only where it still holds the
// token, so that two uses at once set one password.
func (s *Service) Use(ctx context.Context, r Redeemed, hash string) (*account.Account, error) {
	var rec *Record
	err := s.swap(ctx, r.Name, func(cur *Record) error {
		if !s.live(cur, r.uid, r.digest) {
			return ErrToken
		}
		cur.Hash, cur.Token = hash, nil
		cur.Generation++
		rec = cur
		return nil
	})
	if errors.Is(err, ErrNoUser) {
		err = ErrToken
	}
	if err != nil {
		return nil, err
	}
	s.unindex(ctx, &Token{Digest: r.digest})
	return s.accountOf(rec)
}

// live reports whether the record holds the token of the digest, for
// the same user, before its expiry.
func (s *Service) live(rec *Record, uid, digest string) bool {
	return rec.UID == uid && rec.Token != nil && subtle.ConstantTimeCompare([]byte(rec.Token.Digest), []byte(digest)) == 1 &&
		s.Clock.Now().Before(rec.Token.Expires)
}

// stored is the record named key as the store holds it (and this node
// from then on): a change made on another node moments ago, before this
// node's sync, counts, so that a token is never judged by a stale copy
// (a store that does not answer is records.StoreFailed).
func (s *Service) stored(ctx context.Context, key string) ([]byte, error) {
	sealed, err := s.Records.Realm.ReadRecord(ctx, key)
	if err != nil {
		return nil, records.StoreFailed{Err: err}
	}
	return sealed, nil
}

// swap changes the user's record with change, reading it anew when
// another node changed it meanwhile.
func (s *Service) swap(ctx context.Context, name string, change func(*Record) error) error {
	if s.Config.InConfig(name) {
		return ErrInConfig
	}
	if _, err := s.stored(ctx, Key(name)); err != nil {
		return err
	}
	return s.Records.Swap(ctx, Key(name), func(sealed []byte) ([]byte, error) {
		if sealed == nil {
			return nil, ErrNoUser
		}
		rec, err := s.open(name, sealed)
		if err != nil {
			return nil, err
		}
		if err := change(rec); err != nil {
			return nil, err
		}
		return s.Records.Seal(Key(name), rec), nil
	})
}

// tokenBytes is a token's length before base64url.
const tokenBytes = 32

// newToken makes a token and what the store keeps of it.
func (s *Service) newToken(purpose string, valid time.Duration) (string, *Token, error) {
	switch {
	case valid == 0:
		valid = DefaultValid
	case valid < time.Minute || valid > MaxValid:
		return "", nil, fmt.Errorf("valid must be between 1m and %s", MaxValid)
	}
	token := base64.RawURLEncoding.EncodeToString(session.Random(tokenBytes))
	return token, &Token{Digest: digestOf(token), Purpose: purpose, Expires: s.Clock.Now().Add(valid).UTC().Truncate(time.Second)}, nil
}

// digestOf is what the store keeps of a token.
func digestOf(token string) string {
	sum := sha256.Sum256([]byte("miniapp user token\x00" + token))
	return hex.EncodeToString(sum[:])
}

// tokenIndex is the record that finds a token's user by its digest.
type tokenIndex struct {
	Name string `json:"name"`
	UID  string `json:"uid"`
}

// indexKey names the record of a token's digest.
func indexKey(digest string) string { return "user-token:" + digest }

// index records which user a token is for.
func (s *Service) index(ctx context.Context, t *Token, rec *Record) error {
	key := indexKey(t.Digest)
	return s.Records.Swap(ctx, key, func([]byte) ([]byte, error) {
		return s.Records.Seal(key, tokenIndex{Name: rec.Name, UID: rec.UID}), nil
	})
}

// unindex removes the record of a token no longer out; a store that
// does not answer leaves it, harmless: the user's record no longer
// holds the token.
func (s *Service) unindex(ctx context.Context, t *Token) {
	if t == nil {
		return
	}
	_ = s.Records.Swap(ctx, indexKey(t.Digest), func([]byte) ([]byte, error) { return nil, nil })
}
