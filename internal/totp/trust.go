package totp

import (
	"context"
	"encoding/hex"
	"slices"
	"time"
)

// A browser trusted for the second factor (remember_second_factor) is
// one entry of the user's record of trusted browsers: the cookie names
// it, and its trust lasts while the entry does. Sign out everywhere, a
// new password, turning the second factor off and an operator's resets
// end them all.

// TrustKind names the records of trusted browsers (see
// records.Store.Key).
const TrustKind = "trust"

// trustKey names the record of a user's trusted browsers.
func (s *Service) trustKey(user string) string { return s.Records.Key(TrustKind, user) }

// MaxTrusts bounds a user's trusted browsers: a new one beyond it ends
// the oldest.
const MaxTrusts = 16

// Trust is a browser trusted for the second factor.
type Trust struct {
	// ID names the trust (hex), as its cookie carries it.
	ID      string    `json:"id"`
	Device  string    `json:"device"`
	Address string    `json:"address"`
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
}

// Trusts are the user's live trusted browsers, newest first; a record
// that does not open is an error.
func (s *Service) Trusts(user string) ([]Trust, error) {
	var list []Trust
	key := s.trustKey(user)
	if sealed := s.Records.Get(key); sealed != nil {
		if err := s.Records.Open(key, sealed, &list); err != nil {
			return nil, err
		}
	}
	now := s.Clock.Now()
	list = slices.DeleteFunc(list, func(t Trust) bool { return !now.Before(t.Expires) })
	slices.Reverse(list)
	return list, nil
}

// Trusted reports whether the user's browser of the trust ID is trusted
// now.
func (s *Service) Trusted(user string, id [16]byte) bool {
	list, err := s.Trusts(user)
	return err == nil && slices.ContainsFunc(list, func(t Trust) bool { return t.ID == hex.EncodeToString(id[:]) })
}

// Trust records a trusted browser of the user, ending the oldest beyond
// MaxTrusts and those expired.
func (s *Service) Trust(ctx context.Context, user string, t Trust) error {
	return s.swapTrusts(ctx, user, func(list []Trust) []Trust {
		now := s.Clock.Now()
		list = slices.DeleteFunc(list, func(old Trust) bool { return !now.Before(old.Expires) })
		if len(list) >= MaxTrusts {
			list = list[len(list)-MaxTrusts+1:]
		}
		return append(list, t)
	})
}

// Untrust ends one trusted browser of the user, and reports whether it
// was one.
func (s *Service) Untrust(ctx context.Context, user, id string) (bool, error) {
	found := false
	err := s.swapTrusts(ctx, user, func(list []Trust) []Trust {
		n := len(list)
		list = slices.DeleteFunc(list, func(t Trust) bool { return t.ID == id })
		found = len(list) < n
		return list
	})
	return found, err
}

// UntrustAll ends every trusted browser of the user, whether the record
// opens or not, and one trusted on another node moments ago, before
// this node's sync.
func (s *Service) UntrustAll(ctx context.Context, user string) error {
	key := s.trustKey(user)
	if s.Records.Get(key) == nil {
		sealed, err := s.Records.Realm.ReadRecord(ctx, key)
		if err != nil || sealed == nil {
			return err
		}
	}
	return s.Records.Swap(ctx, key, func([]byte) ([]byte, error) { return nil, nil })
}

// swapTrusts changes the user's trusted browsers; none left removes the
// record.
func (s *Service) swapTrusts(ctx context.Context, user string, change func([]Trust) []Trust) error {
	key := s.trustKey(user)
	return s.Records.Swap(ctx, key, func(sealed []byte) ([]byte, error) {
		var list []Trust
		if sealed != nil {
			if err := s.Records.Open(key, sealed, &list); err != nil {
				return nil, err
			}
		}
		if list = change(list); len(list) == 0 {
			return nil, nil
		}
		return s.Records.Seal(key, list), nil
	})
}
