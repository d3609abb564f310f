// Package account owns the accounts that may sign in: their names, IDs
// and password hashes, the check of a password with Caddy's hash
// comparers, and the fake hash that makes an unknown name cost as much
// as a wrong password. It knows nothing of HTTP, sessions or stores:
// it takes a name and a password and answers with an account or a
// reason.
package account

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/caddyauth"
)

// MaxNameLen bounds a user name, in bytes.
const MaxNameLen = 1024

// Account is a user who may sign in: the name, the password hash and
// the Caddy comparer for the hash's algorithm.
type Account struct {
	// Name is the account's username.
	Name string
	// ID is what sessions, revocations and sign-out counters are bound
	// to: the account as configured, in its realm.
	ID ID
	// Stable is what its passkeys are bound to: ID for an account of the
	// Caddyfile (a new hash is a new account); for a managed account,
	// derived from its immutable ID, which a new password keeps.
	Stable ID
	// Comparer is Caddy's comparer for the hash's algorithm.
	Comparer caddyauth.Comparer
	// Placeholders are the account's fields made once as placeholder
	// values, for every request; JSONName is Name as a JSON string.
	Placeholders Placeholders
	JSONName     []byte
	// Groups, Email and FullName describe the user to other sites; Groups
	// is also joined with commas once, as headers and placeholders take
	// it.
	Groups    []string
	Email     string
	FullName  string
	GroupList string
	// Links are the provider identities that sign in as the account.
	Links []Link
	// Managed: the account lives in the realm's store (see Managed), and
	// its passwords are normalised to NFC; UID is then its immutable ID
	// (hex) and Generation its password's.
	Managed    bool
	UID        string
	Generation uint32

	// hash is nil for an account without a password, which signs in
	// only through its links (and passkeys).
	hash []byte
}

// SubjectKey is what an OpenID Connect provider derives the account's
// sub from: cfg:<name> for the Caddyfile's, uid:<id> for a managed
// account (never its name, which a removed user's successor may take).
func (a *Account) SubjectKey() string {
	if a.Managed {
		return "uid:" + a.UID
	}
	return "cfg:" + a.Name
}

// RecordKey names the account's record of a kind (its second factor,
// trusted browsers, passkeys, OpenID Connect grants): kind:<name> for a
// user of the Caddyfile; kind@<id>:<name> for a managed account, whose
// records hang on its immutable ID, so that they outlive a password
// change and pass neither to a later account of the name nor to a user
// of the Caddyfile given it (whose key has ':' right after the kind).
func (a *Account) RecordKey(kind string) string {
	if a.Managed {
		return kind + "@" + a.UID + ":" + a.Name
	}
	return kind + ":" + a.Name
}

// RecordUser is the user name a record key of the kind (see RecordKey)
// names; whether the key is still that user's is for the caller to
// compare with the account's RecordKey.
func RecordUser(kind, key string) (string, bool) {
	if name, ok := strings.CutPrefix(key, kind+":"); ok {
		return name, true
	}
	rest, ok := strings.CutPrefix(key, kind+"@")
	if !ok {
		return "", false
	}
	_, name, ok := strings.Cut(rest, ":")
	return name, ok
}

// HasPassword reports whether the account may sign in with a password.
func (a *Account) HasPassword() bool { return a.hash != nil }

// Placeholders are an account's fields as placeholder values.
type Placeholders struct {
	// User is the name, Groups the groups joined with commas, Email the
	// email address and Name the display name.
	User, Groups, Email, Name any
}

// Config is an account as configured: the name, the password hash (both
// with placeholders replaced at load) and what describes the user.
type Config struct {
	Username, Password string
	Groups             []string
	Email, Name        string
	Links              []Link
}

// HasGroup reports whether the account is in the group.
func (a *Account) HasGroup(group string) bool {
	return slices.Contains(a.Groups, group)
}

// ID names an account by its realm, its name and its configured
// password hash. The hash is salted, so two sites that each configure a
// user of the same name never share an ID by accident, and a changed
// password hash is a new account whose old sessions are refused. Being
// a digest, it gives storage keys of one length whatever the name.
type ID [16]byte

// TagLen is how much of the account ID a session cookie carries.
const TagLen = 8

// Tag is the part of the account ID a session cookie carries, to tell
// whether the account it was issued for is still the configured one.
type Tag [TagLen]byte

// newID derives the ID of an account.
func newID(realm, name, hash string) ID {
	sum := sha256.Sum256([]byte("miniapp account v1\x00" + realm + "\x00" + name + "\x00" + hash))
	return ID(sum[:16])
}

// Tag is the part of the ID that session cookies carry.
func (id ID) Tag() Tag { return Tag(id[:TagLen]) }

// Set is a realm's configured accounts by name, with the fake account
// an unknown name is checked against, and the accounts managed in the
// realm's store after them.
type Set struct {
	users map[string]*Account
	links map[Link]*Account
	fake  *Account
	// managed finds an account managed in the store, nil for none
	managed Source
	// hashed: a configured account has a password
	hashed bool
	// Mixed reports whether the accounts' hashes differ in algorithm or
	// cost: an unknown name then takes as long as a wrong password only
	// for the users whose hashes are like most users'.
	Mixed bool
}

// Load builds the accounts from the config, replacing placeholders in
// names and hashes. The fake account's hash has the algorithm and
// parameters that most accounts share, so that checking an unknown name
// costs as much as a wrong password.
func Load(accounts []Config, realm string, repl *caddy.Replacer) (*Set, error) {
	set := &Set{users: make(map[string]*Account, len(accounts)), links: map[Link]*Account{}}
	shares := map[string]int{}
	var common *Account
	for i, acct := range accounts {
		name := repl.ReplaceKnown(acct.Username, "")
		hash := repl.ReplaceKnown(acct.Password, "")
		switch {
		case name == "" && acct.Username != "", hash == "" && acct.Password != "":
			// a placeholder such as {env.ADA_HASH} replaced by nothing
			return nil, fmt.Errorf("user %d: name or password hash is empty (is its environment variable set?)", i+1)
		case name == "":
			return nil, fmt.Errorf("user %d: a name is required", i+1)
		case hash == "" && len(acct.Links) == 0:
			return nil, fmt.Errorf("user %q: a password hash is required, or sign_in_with for a user who signs in only through providers", name)
		}
		if err := CheckName(name); err != nil {
			return nil, fmt.Errorf("user %q: %v", name, err)
		}
		if _, dup := set.users[name]; dup {
			return nil, fmt.Errorf("duplicate user %q", name)
		}
		if err := checkProfile(acct); err != nil {
			return nil, fmt.Errorf("user %q: %v", name, err)
		}
		jsonName, err := json.Marshal(name)
		if err != nil {
			return nil, err
		}
		id := newID(realm, name, hash)
		user := &Account{Name: name, ID: id, Stable: id, JSONName: jsonName, Groups: acct.Groups, Email: acct.Email,
			FullName: acct.Name, GroupList: strings.Join(acct.Groups, ","), Links: acct.Links}
		user.Placeholders = Placeholders{User: name, Groups: user.GroupList, Email: acct.Email, Name: acct.Name}
		for _, l := range acct.Links {
			if other, dup := set.links[l.key()]; dup {
				return nil, fmt.Errorf("user %q: %s %q is linked to user %q already", name, l.Provider, l.Subject, other.Name)
			}
			set.links[l.key()] = user
		}
		set.users[name] = user
		if hash == "" {
			continue
		}
		if user.Comparer, err = comparerFor(hash); err != nil {
			return nil, fmt.Errorf("user %q: %v", name, err)
		}
		user.hash = []byte(hash)
		shares[costOf(hash)]++
		if common == nil || shares[costOf(hash)] > shares[costOf(string(common.hash))] {
			common = user
		}
	}
	like := defaultHash
	if common != nil {
		like = string(common.hash)
	}
	fake, err := fakeHashLike(like)
	if err != nil {
		return nil, fmt.Errorf("making the fake hash: %v", err)
	}
	cmp, err := comparerFor(string(fake))
	if err != nil {
		return nil, fmt.Errorf("making the fake hash: %v", err)
	}
	set.fake = &Account{hash: fake, Comparer: cmp}
	set.Mixed = len(shares) > 1
	set.hashed = common != nil
	return set, nil
}

// Guest is the account of a guest of the realm: a user without an
// account here whom a provider vouched for, named <provider>:<id>,
// with what the provider said (a display name, a verified e-mail
// address) and the groups the config gives. Its ID is derived from the
// realm and the name alone (the key guest:<provider>:<id>), so sign out
// everywhere and the sessions list work for it as for any account; it
// has no password.
func Guest(realm, name, display, email string, groups []string) *Account {
	sum := sha256.Sum256([]byte("miniapp guest v1\x00" + realm + "\x00" + name))
	jsonName, _ := json.Marshal(name) // a string: never fails
	a := &Account{Name: name, ID: ID(sum[:16]), Stable: ID(sum[:16]), JSONName: jsonName, Groups: groups, Email: email, FullName: display,
		GroupList: strings.Join(groups, ",")}
	a.Placeholders = Placeholders{User: name, Groups: a.GroupList, Email: email, Name: display}
	return a
}

// Lookup returns the account of the name: the configured one, or the
// one managed in the store.
func (s *Set) Lookup(name string) (*Account, bool) {
	if acct, ok := s.users[name]; ok || s.managed == nil {
		return acct, ok
	}
	return s.managed.Lookup(name)
}

// ByID returns the account with the ID.
func (s *Set) ByID(id ID) (*Account, bool) {
	for _, acct := range s.users {
		if acct.ID == id {
			return acct, true
		}
	}
	return nil, false
}

// Reasons a password check fails.
const (
	reasonUnknownUser   = "unknown user"
	reasonWrongPassword = "wrong password"
	reasonNoPassword    = "no password: the user signs in through providers"
)

// Check checks a password. An unknown user, and one without a password,
// costs the same as a wrong password: the password is compared with the
// fake hash. A managed account's password is compared normalised to
// NFC, as it was hashed. A nil account comes with the reason of the
// failure; an error is the comparer's own failure, no fault of the
// client's.
func (s *Set) Check(name, password string) (*Account, string, error) {
	acct, known := s.Lookup(name)
	checked := acct
	if !known || !acct.HasPassword() {
		checked = s.fake
	} else if acct.Managed {
		password = NFC(password)
	}
	ok, err := checked.Comparer.Compare(checked.hash, []byte(password))
	switch {
	case err != nil:
		return nil, "", err
	case !known:
		return nil, reasonUnknownUser, nil
	case !acct.HasPassword():
		return nil, reasonNoPassword, nil
	case !ok:
		return nil, reasonWrongPassword, nil
	}
	return acct, "", nil
}

// Bounds of what describes a user.
const (
	maxGroupLen = 64
	maxEmailLen = 254
	maxFullName = 256
)

// checkProfile checks the groups, email and display name of an account:
// text that headers, placeholders and pages can carry as it is. Groups
// travel comma-separated, so a group holds no comma or space.
func checkProfile(acct Config) error {
	for i, g := range acct.Groups {
		if g == "" || len(g) > maxGroupLen || strings.ContainsAny(g, ", ") || CheckText(g) != nil {
			return fmt.Errorf("group %q must be 1 to %d characters without commas, spaces or control characters", g, maxGroupLen)
		}
		if slices.Contains(acct.Groups[:i], g) {
			return fmt.Errorf("duplicate group %q", g)
		}
	}
	if acct.Email != "" {
		local, domain, ok := strings.Cut(acct.Email, "@")
		if !ok || local == "" || domain == "" || strings.Contains(domain, "@") || len(acct.Email) > maxEmailLen ||
			strings.ContainsAny(acct.Email, ", ") || CheckText(acct.Email) != nil {
			return fmt.Errorf("email %q is not an email address", acct.Email)
		}
	}
	if len(acct.Name) > maxFullName || CheckText(acct.Name) != nil {
		return fmt.Errorf("name must be at most %d characters without control characters", maxFullName)
	}
	return nil
}

// CheckName rejects user names that cannot be shown or logged safely.
func CheckName(name string) error {
	if len(name) > MaxNameLen {
		return fmt.Errorf("longer than %d bytes", MaxNameLen)
	}
	return CheckText(name)
}

// Why CheckText refuses text.
var (
	errNotUTF8  = errors.New("text is not valid UTF-8")
	errControls = errors.New("text contains control characters")
)

// CheckText rejects text that is not valid UTF-8 or holds control
// characters, which would corrupt a page, a header or a log line.
func CheckText(s string) error {
	if !utf8.ValidString(s) {
		return errNotUTF8
	}
	for _, r := range s {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return errControls
		}
	}
	return nil
}
