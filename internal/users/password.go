package users

import (
	"bufio"
	"bytes"
	"crypto/rand"
	_ "embed"
	"encoding/base64"
	"fmt"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/caddy-miniapp/miniapp/internal/account"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/caddyauth"
	"golang.org/x/crypto/argon2"
)

// Hasher names how new passwords are hashed.
type Hasher string

// The hashers.
const (
	// Argon2id hashes in the format and with the parameters of Caddy's
	// own argon2id hasher (caddy hash-password), whose comparer checks
	// it. Caddy's hasher cannot be set up from outside its package (its
	// zero value has no parameters), so the key is derived here with
	// golang.org/x/crypto/argon2 as Caddy does.
	Argon2id Hasher = "argon2id"
	// Bcrypt hashes with Caddy's bcrypt hasher; it reads only the first
	// 72 bytes of a password, so longer ones are refused.
	Bcrypt Hasher = "bcrypt"
)

// Caddy's argon2id parameters (caddy hash-password's defaults).
const (
	argonTime    = 1
	argonMemory  = 46 * 1024
	argonThreads = 1
	argonKeyLen  = 32
	argonSalt    = 16
)

// MaxBytes is the longest password the hasher takes, in bytes.
func (h Hasher) MaxBytes() int {
	if h == Bcrypt {
		return 72
	}
	return 1024
}

// Hash hashes a password normalised to NFC.
func (h Hasher) Hash(password string) (string, error) {
	plain := []byte(account.NFC(password))
	if h == Bcrypt {
		hash, err := caddyauth.BcryptHash{}.Hash(plain)
		return string(hash), err
	}
	salt := make([]byte, argonSalt)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	key := argon2.IDKey(plain, salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key)), nil
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
