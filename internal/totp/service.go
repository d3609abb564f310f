package totp

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/records"
	"github.com/caddy-miniapp/miniapp/internal/session"
	"go.uber.org/zap"
)

// Limits of the codes.
const (
	// MaxFailures is how many wrong codes an account may have in
	// Window, and a pending sign-in in its lifetime.
	MaxFailures = 5
	// Window is the window of an account's wrong codes.
	Window = time.Minute
)

// Why a factor could not be used or changed.
var (
	// ErrUnreadable is a factor's record that does not open: the factor
	// stays on until an operator resets it.
	ErrUnreadable = errors.New("the second factor's record does not open (edited in the store, or sealed with a key no longer configured)")
	// ErrNoFactor is an account without one.
	ErrNoFactor = errors.New("no second factor")
)

// Throttled refuses codes for an account until its window ends.
type Throttled struct {
	// Wait is how long until the window ends.
	Wait time.Duration
}

func (e Throttled) Error() string { return "too many wrong codes" }

// Kind names the records of second factors (see records.Store.Key): a
// factor belongs to the account, not to its password hash, so a new
// password keeps it.
const Kind = "totp"

// key names the store record of the user's factor.
func (s *Service) key(user string) string { return s.Records.Key(Kind, user) }

// Service is a realm's second factors, in its records.
type Service struct {
	// Records are the realm's sealed records.
	Records *records.Store
	// Clock is the handler's clock.
	Clock *session.Clock
	// Logger logs recovery codes used and store faults.
	Logger *zap.Logger
}

// Of returns the user's factor as this node holds it, nil when the user
// has none, and the sealed record. A record that does not open is
// ErrUnreadable.
func (s *Service) Of(user string) (*Factor, []byte, error) {
	key := s.key(user)
	sealed := s.Records.Get(key)
	f, err := s.open(key, sealed)
	return f, sealed, err
}

// open opens the sealed factor record named key; nil for none.
func (s *Service) open(key string, sealed []byte) (*Factor, error) {
	if sealed == nil {
		return nil, nil
	}
	var f Factor
	if err := s.Records.Open(key, sealed, &f); err != nil || f.Secret == "" {
		return nil, ErrUnreadable
	}
	return &f, nil
}

// Has reports whether the user has one-time codes; a record that does
// not open counts.
func (s *Service) Has(user string) bool {
	return s.Records.Get(s.key(user)) != nil
}

// HasNow is Has as the store says it now rather than this node's
// memory, for a sign-in that must not skip a factor set up on another
// node a moment ago (before this node's sync); while the store does not
// answer, this node's copy once it has read every record, else a
// StoreFailed: a factor is never taken for absent.
func (s *Service) HasNow(ctx context.Context, user string) (bool, error) {
	realm, key := s.Records.Realm, s.key(user)
	sealed, err := realm.ReadRecord(ctx, key)
	if err != nil {
		if sealed, err = realm.RecordNow(ctx, key); err != nil {
			return false, records.StoreFailed{Err: err}
		}
	}
	return sealed != nil, nil
}

// Status is the second factor as the profile and the admin API show it.
type Status struct {
	// TOTP is whether the user has one-time codes.
	TOTP bool `json:"totp"`
	// RecoveryCodesLeft is how many unused recovery codes the user has.
	RecoveryCodesLeft int `json:"recovery_codes_left"`
}

// StatusOf is the user's second factor status.
func (s *Service) StatusOf(user string) Status {
	f, sealed, _ := s.Of(user)
	if f == nil {
		return Status{TOTP: sealed != nil}
	}
	return Status{TOTP: true, RecoveryCodesLeft: len(f.Recovery)}
}

// Swap stores the factor made by change from the user's current one
// (nil: none; a nil result removes it) in place of that one (see
// records.Store.Swap). A record that does not open is ErrUnreadable (an
// operator's reset removes it).
func (s *Service) Swap(ctx context.Context, user string, change func(*Factor) (*Factor, error)) error {
	key := s.key(user)
	return s.Records.Swap(ctx, key, func(sealed []byte) ([]byte, error) {
		f, err := s.open(key, sealed)
		if err != nil {
			return nil, err
		}
		next, err := change(f)
		if err != nil || next == nil {
			return nil, err
		}
		return s.Records.Seal(key, next), nil
	})
}

// Use checks a code or recovery code of the user's factor and records
// its use in the store, so that it works once on every node (a swap from
// the record it was checked against). Attempts are counted per account
// in the store before the check, so that neither spreading guesses over
// clients or nodes nor sending many at once helps; a right code takes
// its attempt back. The attempts are the account's, like its factor: a
// managed account's and a Caddyfile user's of one name count apart.
func (s *Service) Use(ctx context.Context, user, code string) (CodeKind, error) {
	attempts := s.Records.Key("code", user)
	n, until, err := s.Records.Realm.Strike(ctx, attempts, 1, Window)
	if err != nil {
		return "", records.StoreFailed{Err: err}
	}
	if n > MaxFailures {
		return "", Throttled{until.Sub(s.Clock.Now())}
	}
	var kind CodeKind
	err = s.Swap(ctx, user, func(f *Factor) (*Factor, error) {
		if f == nil {
			return nil, ErrNoFactor
		}
		next, k, err := f.Use(code, s.Clock.Now())
		kind = k
		return next, err
	})
	if !WrongCode(err) {
		if _, _, serr := s.Records.Realm.Strike(ctx, attempts, -1, Window); serr != nil && err == nil {
			s.Logger.Warn("taking back a right code's attempt", zap.String("user", user), zap.Error(serr))
		}
	}
	if err == nil && kind == ByRecovery {
		s.Logger.Info("recovery code used", zap.String("user", user))
	}
	return kind, err
}

// WrongCode reports whether err refuses the code itself (wrong, or used
// before), rather than the check.
func WrongCode(err error) bool {
	return errors.Is(err, ErrWrongCode) || errors.Is(err, ErrReplayed)
}

// Enrol stores a new factor of the secret once its first code matches
// (ErrWrongCode otherwise, and nothing is stored), in place of any
// factor the user had; it returns the recovery codes, to show once, and
// whether a factor was replaced.
func (s *Service) Enrol(ctx context.Context, user, secret, code string) ([]string, bool, error) {
	now := s.Clock.Now()
	step, ok := MatchStep(secret, code, now)
	if !ok {
		return nil, false, ErrWrongCode
	}
	factor := &Factor{Secret: secret, LastStep: step, Created: now.Unix()}
	codes := factor.NewRecovery()
	replaced := false
	err := s.Swap(ctx, user, func(old *Factor) (*Factor, error) {
		replaced = old != nil
		return factor, nil
	})
	return codes, replaced, err
}

// Remove removes the user's factor.
func (s *Service) Remove(ctx context.Context, user string) error {
	return s.Swap(ctx, user, func(*Factor) (*Factor, error) { return nil, nil })
}

// NewRecoveryCodes replaces the user's recovery codes, returning the new
// ones to show once.
func (s *Service) NewRecoveryCodes(ctx context.Context, user string) ([]string, error) {
	var codes []string
	err := s.Swap(ctx, user, func(old *Factor) (*Factor, error) {
		if old == nil {
			return nil, ErrNoFactor
		}
		next := *old
		codes = next.NewRecovery()
		return &next, nil
	})
	return codes, err
}

// AppendStatus appends the status as JSON.
func AppendStatus(b []byte, s Status) []byte {
	b = strconv.AppendBool(append(b, `{"totp":`...), s.TOTP)
	return append(strconv.AppendInt(append(b, `,"recovery_codes_left":`...), int64(s.RecoveryCodesLeft), 10), '}')
}

// AppendStatusLine appends the status as the profile page says it.
func AppendStatusLine(b []byte, s Status) []byte {
	if !s.TOTP {
		return append(b, "Off"...)
	}
	return strconv.AppendInt(append(b, "On · recovery codes left: "...), int64(s.RecoveryCodesLeft), 10)
}
