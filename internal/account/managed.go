package account

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"strings"

	"golang.org/x/text/unicode/norm"
)

// Source finds the accounts managed in the realm's store by name.
type Source interface {
	Lookup(name string) (*Account, bool)
}

// Manage makes the accounts of src part of the set, after the
// configured ones: a name of both is the config's.
func (s *Set) Manage(src Source) { s.managed = src }

// Hashed reports whether a configured account has a password.
func (s *Set) Hashed() bool { return s.hashed }

// FakeLike gives the fake hash the parameters of hash (a hash of the
// managed accounts' hasher) where no configured account has a password:
// an unknown name then costs as much as a managed account's wrong
// password.
func (s *Set) FakeLike(hash string) error {
	if s.hashed {
		return nil
	}
	fake, err := fakeHashLike(hash)
	if err != nil {
		return err
	}
	cmp, err := comparerFor(string(fake))
	if err != nil {
		return err
	}
	s.fake = &Account{hash: fake, Comparer: cmp}
	return nil
}

// Like reports whether a hash has the algorithm and parameters of the
// fake hash an unknown name is checked against: a wrong password then
// costs as much as an unknown name.
func (s *Set) Like(hash string) bool { return costOf(hash) == costOf(string(s.fake.hash)) }

// InConfig reports whether the name is a configured user's.
func (s *Set) InConfig(name string) bool {
	_, ok := s.users[name]
	return ok
}

// LikeConfigured reports whether the name is a configured user's in
// any case: a managed account may not be told from one by case alone.
func (s *Set) LikeConfigured(name string) bool {
	for configured := range s.users {
		if strings.EqualFold(configured, name) {
			return true
		}
	}
	return false
}

// ManagedConfig is an account managed in the realm's store: its name,
// its immutable random ID, the generation of its password (a change or
// reset moves it on), its password hash (none before its invite is
// used) and what describes the user.
type ManagedConfig struct {
	Name        string
	UID         [16]byte
	Generation  uint32
	Hash        string
	Groups      []string
	Email, Full string
}

// Managed is the account of a managed user. Its ID is derived from the
// realm, the name, its immutable ID and its password's generation: a
// new password ends its sessions, and a user removed and made again
// under the same name is another account.
func Managed(realm string, m ManagedConfig) (*Account, error) {
	var gen [4]byte
	binary.BigEndian.PutUint32(gen[:], m.Generation)
	sum := sha256.Sum256([]byte("miniapp managed account v1\x00" + realm + "\x00" + m.Name + "\x00" + string(m.UID[:]) + string(gen[:])))
	jsonName, _ := json.Marshal(m.Name) // a string: never fails
	stable := sha256.Sum256([]byte("miniapp managed account v1\x00" + realm + "\x00" + m.Name + "\x00" + string(m.UID[:])))
	a := &Account{Name: m.Name, ID: ID(sum[:16]), Stable: ID(stable[:16]), JSONName: jsonName, Groups: m.Groups, Email: m.Email, FullName: m.Full,
		GroupList: strings.Join(m.Groups, ","), Managed: true, UID: hex.EncodeToString(m.UID[:]), Generation: m.Generation}
	a.Placeholders = Placeholders{User: m.Name, Groups: a.GroupList, Email: m.Email, Name: m.Full}
	if m.Hash != "" {
		cmp, err := comparerFor(m.Hash)
		if err != nil {
			return nil, err
		}
		a.Comparer, a.hash = cmp, []byte(m.Hash)
	}
	return a, nil
}

// NFC is a managed account's password as it is hashed and checked:
// normalised to Unicode's NFC, so that one password typed on two
// keyboards is one password.
func NFC(password string) string { return norm.NFC.String(password) }
