package users

import (
	"bufio"
	"bytes"
	"crypto/rand"
	_ "embed"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/caddy-miniapp/miniapp/internal/account"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/caddyauth"
)

// Hasher names how new passwords are hashed.
type Hasher string

// The hashers.
const (
	// Argon2id hashes with Caddy's own argon2id hasher and its default
	// parameters (those of caddy hash-password).
	Argon2id Hasher = "argon2id"
	// Bcrypt hashes with Caddy's bcrypt hasher; it reads only the first
	// 72 bytes of a password, so longer ones are refused.
	Bcrypt Hasher = "bcrypt"
)

// MaxBytes is the longest password the hasher takes, in bytes.
func (h Hasher) MaxBytes() int {
	if h == Bcrypt {
		return 72
	}
	return 1024
}

// FakeHash is Caddy's fake hash of the hasher's algorithm: a hash with
// its parameters, which no password matches.
func (h Hasher) FakeHash() string {
	if h == Bcrypt {
		return string(caddyauth.BcryptHash{}.FakeHash())
	}
	return string(caddyauth.Argon2idHash{}.FakeHash())
}

// Hash hashes a password normalised to NFC.
func (h Hasher) Hash(password string) (string, error) {
	plain := []byte(account.NFC(password))
	if h == Bcrypt {
		hash, err := caddyauth.BcryptHash{}.Hash(plain)
		return string(hash), err
	}
	hasher, err := argon2idHasher()
	if err != nil {
		return "", err
	}
	hash, err := hasher.Hash(plain)
	return string(hash), err
}

// argon2idHasher is Caddy's argon2id hasher with its default parameters
// (its fake hash's, as caddy hash-password makes them) and a fresh salt
// of their length: Caddy's hasher is set up only from a hash (its zero
// value has no parameters), so it is made from its fake hash with the
// salt replaced.
func argon2idHasher() (*caddyauth.Argon2idHash, error) {
	parts := strings.Split(Argon2id.FakeHash(), "$")
	if len(parts) != 6 {
		return nil, errors.New("caddy's argon2id fake hash is not in the PHC format")
	}
	salt := make([]byte, base64.RawStdEncoding.DecodedLen(len(parts[4])))
	if _, err := rand.Read(salt); err != nil {
		return nil, err
	}
	parts[4] = base64.RawStdEncoding.EncodeToString(salt)
	hasher, _, err := caddyauth.DecodeHash([]byte(strings.Join(parts, "$")))
	return hasher, err
}

// Rules are what a new password must meet (NIST SP 800-63B-4): at least
// Min characters (15, or 8 where a second factor is required), at most
// the hasher's bytes, any Unicode, no composition rules; not the user's
// name, the realm, the host, nor one of the 10,000 most common
// passwords.
type Rules struct {
	Min         int
	Hasher      Hasher
	Realm, Host string
}

// RuleError is a password refused by a rule: its one-line reason names
// the rule, never the password.
type RuleError struct{ Reason string }

func (e *RuleError) Error() string { return e.Reason }

// Check refuses a password that breaks a rule.
func (r Rules) Check(name, password string) error {
	password = account.NFC(password)
	lower := strings.ToLower(password)
	switch {
	case utf8.RuneCountInString(password) < r.Min:
		return &RuleError{fmt.Sprintf("the new password must have at least %d characters", r.Min)}
	case len(password) > r.Hasher.MaxBytes():
		return &RuleError{fmt.Sprintf("the new password must have at most %d bytes", r.Hasher.MaxBytes())}
	case !utf8.ValidString(password) || strings.ContainsRune(password, 0):
		return &RuleError{"the new password must be text"}
	case lower == strings.ToLower(name) || lower == strings.ToLower(r.Realm) || r.Host != "" && lower == strings.ToLower(r.Host):
		return &RuleError{"the new password must not be the user name, the realm or the site's name"}
	case common()[lower]:
		return &RuleError{"the new password is one of the 10,000 most common passwords"}
	}
	return nil
}

// commonList is the 10,000 most common passwords, one per line, most
// common first: the top of the "passwords" list of Dropbox's zxcvbn
// (MIT licence; from Mark Burnett's and Xato's corpus of ten million
// leaked passwords), as Debian's python3-zxcvbn 4.4.28 ships it.
//
//go:embed common-passwords.txt
var commonList []byte

// common is commonList as a set, made at its first use.
var common = sync.OnceValue(func() map[string]bool {
	set := make(map[string]bool, 10000)
	for sc := bufio.NewScanner(bytes.NewReader(commonList)); sc.Scan(); {
		set[sc.Text()] = true
	}
	return set
})
