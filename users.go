package miniapp

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/caddyauth"
	"golang.org/x/crypto/bcrypt"
)

// account is a user who may sign in: the name, the password hash and
// the Caddy comparer for the hash's algorithm.
type account struct {
	// Name is the account's username.
	Name string
	// id is what sessions, revocations and sign-out counters are bound
	// to: the account as configured, in its realm.
	id       accountID
	hash     []byte
	comparer caddyauth.Comparer
	// placeholder and jsonName are Name made once for every request: as
	// a placeholder value and as a JSON string.
	placeholder any
	jsonName    []byte
}

// accountID names an account by its realm, its name and its configured
// password hash. The hash is salted, so two sites that each configure a
// user of the same name never share an ID by accident, and a changed
// password hash is a new account whose old sessions are refused. Being
// a digest, it gives storage keys of one length whatever the name.
type accountID [16]byte

// accountTagLen is how much of the account ID a session cookie carries.
const accountTagLen = 8

// accountTag is the part of the account ID a session cookie carries, to
// tell whether the account it was issued for is still the configured one.
type accountTag [accountTagLen]byte

// newAccountID derives the ID of an account.
func newAccountID(realm, name, hash string) accountID {
	sum := sha256.Sum256([]byte("miniapp account v1\x00" + realm + "\x00" + name + "\x00" + hash))
	return accountID(sum[:16])
}

// tag is the part of the ID that session cookies carry.
func (id accountID) tag() accountTag { return accountTag(id[:accountTagLen]) }

// bcryptEncoding is bcrypt's own base64 alphabet, used to make fake hashes.
var bcryptEncoding = base64.NewEncoding("./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789").WithPadding(base64.NoPadding)

// loadAccounts builds the accounts from the config. It also returns a fake
// user whose hash has the algorithm and parameters that most accounts
// share, so that checking an unknown name costs as much as a wrong
// password, and whether the accounts' parameters differ (then only those
// accounts' timing is matched).
func loadAccounts(accounts []caddyauth.Account, realm string, repl *caddy.Replacer) (map[string]*account, *account, bool, error) {
	if len(accounts) == 0 {
		return nil, nil, false, errors.New("at least one user is required")
	}
	users := make(map[string]*account, len(accounts))
	shares := map[string]int{}
	var common *account
	for i, acct := range accounts {
		name := repl.ReplaceKnown(acct.Username, "")
		hash := repl.ReplaceKnown(acct.Password, "")
		if name == "" || hash == "" {
			return nil, nil, false, fmt.Errorf("user %d: name and password hash are required", i+1)
		}
		if err := checkName(name); err != nil {
			return nil, nil, false, fmt.Errorf("user %q: %v", name, err)
		}
		if _, dup := users[name]; dup {
			return nil, nil, false, fmt.Errorf("duplicate user %q", name)
		}
		cmp, err := comparerFor(hash)
		if err != nil {
			return nil, nil, false, fmt.Errorf("user %q: %v", name, err)
		}
		jsonName, err := json.Marshal(name)
		if err != nil {
			return nil, nil, false, err
		}
		user := &account{Name: name, id: newAccountID(realm, name, hash), hash: []byte(hash), comparer: cmp, placeholder: name, jsonName: jsonName}
		users[name] = user
		shares[hashParams(hash)]++
		if common == nil || shares[hashParams(hash)] > shares[hashParams(string(common.hash))] {
			common = user
		}
	}
	fake, err := fakeHashLike(string(common.hash))
	if err != nil {
		return nil, nil, false, fmt.Errorf("making the fake hash: %v", err)
	}
	return users, &account{hash: fake, comparer: common.comparer}, len(shares) > 1, nil
}

// hashParams is the part of a hash that names its algorithm and cost:
// "$2a$14$" for bcrypt, "$argon2id$v=19$m=47104,t=1,p=1" for argon2id.
func hashParams(hash string) string {
	if strings.HasPrefix(hash, "$argon2id$") {
		return strings.Join(strings.SplitN(hash, "$", 5)[:4], "$")
	}
	return hash[:7]
}

// comparerFor checks that hash parses and returns Caddy's comparer for
// the algorithm the hash names.
func comparerFor(hash string) (caddyauth.Comparer, error) {
	var algorithm string
	switch {
	case strings.HasPrefix(hash, "$2a$"), strings.HasPrefix(hash, "$2b$"), strings.HasPrefix(hash, "$2y$"):
		if _, err := bcrypt.Cost([]byte(hash)); err != nil {
			return nil, fmt.Errorf("password hash is not valid bcrypt: %v", err)
		}
		algorithm = "bcrypt"
	case strings.HasPrefix(hash, "$argon2id$"):
		if _, _, err := caddyauth.DecodeHash([]byte(hash)); err != nil {
			return nil, fmt.Errorf("password hash is not valid argon2id: %v", err)
		}
		algorithm = "argon2id"
	default:
		return nil, errors.New("password hash must be bcrypt ($2a$...) or argon2id ($argon2id$...), as printed by caddy hash-password")
	}
	info, err := caddy.GetModule("http.authentication.hashes." + algorithm)
	if err != nil {
		return nil, err
	}
	return info.New().(caddyauth.Comparer), nil
}

// fakeHashLike returns a hash with the same algorithm and parameters as
// hash but a random salt and digest, so that no password matches it.
func fakeHashLike(hash string) ([]byte, error) {
	if strings.HasPrefix(hash, "$argon2id$") {
		parts := strings.Split(hash, "$")
		for _, i := range []int{4, 5} {
			raw, err := base64.RawStdEncoding.DecodeString(parts[i])
			if err != nil {
				return nil, err
			}
			parts[i] = base64.RawStdEncoding.EncodeToString(randomBytes(len(raw)))
		}
		return []byte(strings.Join(parts, "$")), nil
	}
	// bcrypt: the parameters, then 22 characters of salt and 31 of digest
	salt := bcryptEncoding.EncodeToString(randomBytes(16))
	digest := bcryptEncoding.EncodeToString(randomBytes(23))
	return []byte(hashParams(hash) + salt + digest), nil
}

// checkName rejects user names that cannot be shown or logged safely.
func checkName(name string) error {
	if len(name) > maxFieldLen {
		return fmt.Errorf("longer than %d bytes", maxFieldLen)
	}
	return checkText(name)
}

// authenticate checks a password in one of the process's password check
// slots (errNoSlot when none is free in time), ahead of anonymous logins
// when the browser is a known device of the account. An unknown user costs the
// same as a wrong password: the password is compared with a fake hash of
// the same algorithm and parameters. A nil account comes with the reason
// of the failure.
func (h *Handler) authenticate(ctx context.Context, name, password string, knownDevice bool) (*account, string, error) {
	acct, known := h.users[name]
	if !known {
		acct = h.fakeAccount
	}
	if err := h.checks.acquire(ctx, knownDevice); err != nil {
		return nil, "", err
	}
	ok, err := acct.comparer.Compare(acct.hash, []byte(password))
	h.checks.release()
	switch {
	case err != nil:
		return nil, "", err
	case !known:
		return nil, "unknown user", nil
	case !ok:
		return nil, "wrong password", nil
	}
	return acct, "", nil
}
