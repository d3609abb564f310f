package account

import (
	"errors"
	"strings"
	"testing"

	"github.com/caddy-miniapp/miniapp/internal/testhash"
	"github.com/caddyserver/caddy/v2"
)

var (
	adaHash   = testhash.Bcrypt("lovelace-1815")
	graceHash = testhash.Argon2id("hopper-1906")
)

func load(t *testing.T, accounts ...Config) *Set {
	t.Helper()
	set, err := Load(accounts, "miniapp", caddy.NewReplacer())
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// recordingComparer stands in for a Caddy hash comparer: it records the
// hashes it was asked to compare with, and answers with err.
type recordingComparer struct {
	hashes []string
	err    error
}

func (c *recordingComparer) Compare(hashed, _ []byte) (bool, error) {
	c.hashes = append(c.hashes, string(hashed))
	return false, c.err
}

func TestCheck(t *testing.T) {
	set := load(t, Config{Username: "ada", Password: adaHash}, Config{Username: "grace", Password: graceHash})
	if acct, reason, err := set.Check("ada", "lovelace-1815"); err != nil || reason != "" || acct == nil || acct.Name != "ada" {
		t.Fatalf("right password: %v %q %v", acct, reason, err)
	}
	if acct, reason, err := set.Check("grace", "hopper-1906"); err != nil || acct == nil {
		t.Fatalf("argon2id: %v %q %v", acct, reason, err)
	}
	if acct, reason, err := set.Check("ada", "x"); acct != nil || reason != reasonWrongPassword || err != nil {
		t.Errorf("wrong password: %v %q %v", acct, reason, err)
	}
	if acct, reason, err := set.Check("mallory", "lovelace-1815"); acct != nil || reason != reasonUnknownUser || err != nil {
		t.Errorf("unknown user: %v %q %v", acct, reason, err)
	}
	ada, _ := set.Lookup("ada")
	ada.Comparer = &recordingComparer{err: errors.New("hash engine exploded")}
	if acct, _, err := set.Check("ada", "lovelace-1815"); acct != nil || err == nil {
		t.Errorf("a failing comparer: %v %v", acct, err)
	}
}

func TestUnknownUserComparesFakeHash(t *testing.T) {
	set := load(t, Config{Username: "ada", Password: adaHash})
	stub := &recordingComparer{}
	set.fake.Comparer = stub
	if _, reason, _ := set.Check("mallory", "x"); reason != reasonUnknownUser || len(stub.hashes) != 1 || stub.hashes[0] != string(set.fake.hash) {
		t.Fatalf("unknown user: %q, compared %v", reason, stub.hashes)
	}
	// a known user is compared with its own hash, never the fake one
	_, _, _ = set.Check("ada", "x")
	if len(stub.hashes) != 1 {
		t.Errorf("known user compared with the fake hash")
	}
}

func TestFakeHashFollowsMostUsers(t *testing.T) {
	accounts := []Config{{Username: "a", Password: adaHash}, {Username: "b", Password: graceHash}, {Username: "c", Password: testhash.Argon2id("x")}}
	set := load(t, accounts...)
	if !set.Mixed || hashParams(string(set.fake.hash)) != hashParams(graceHash) {
		t.Errorf("fake %q, mixed %v: want argon2id parameters of most users", set.fake.hash, set.Mixed)
	}
	set = load(t, accounts[0])
	if set.Mixed || hashParams(string(set.fake.hash)) != hashParams(adaHash) {
		t.Errorf("single user: fake %q, mixed %v", set.fake.hash, set.Mixed)
	}
}

func TestLoadErrors(t *testing.T) {
	for _, tc := range []struct {
		accounts []Config
		want     string
	}{
		{[]Config{{Username: "ada"}}, "a password hash is required, or sign_in_with"},
		{[]Config{{Password: adaHash}}, "a name is required"},
		{[]Config{{Username: "ada", Links: []Link{{"github", "1"}}}, {Username: "bob", Links: []Link{{"github", "1"}}}}, `github "1" is linked to user "ada" already`},
		{[]Config{{Username: "ada", Links: []Link{{"co", "Ada@Example.test"}}}, {Username: "bob", Links: []Link{{"co", "ada@example.TEST"}}}}, "linked to user"},
		{[]Config{{Username: "ada", Password: "{env.MINIAPP_TEST_UNSET_HASH}"}}, "user 1: name or password hash is empty (is its environment variable set?)"},
		{[]Config{{Username: "ada", Password: adaHash}, {Username: "ada", Password: adaHash}}, `duplicate user "ada"`},
		{[]Config{{Username: "ada", Password: "plain"}}, "must be bcrypt"},
		{[]Config{{Username: "a\x1bb", Password: adaHash}}, "control characters"},
		{[]Config{{Username: strings.Repeat("a", MaxNameLen+1), Password: adaHash}}, "longer than"},
	} {
		if _, err := Load(tc.accounts, "miniapp", caddy.NewReplacer()); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want %q", tc.accounts, err, tc.want)
		}
	}
}

func TestIDs(t *testing.T) {
	a, b := newID("miniapp", "ada", adaHash), newID("staff", "ada", adaHash)
	c := newID("miniapp", "ada", testhash.Bcrypt("lovelace-1815"))
	if a == b || a == c || a != newID("miniapp", "ada", adaHash) {
		t.Error("IDs do not follow the realm, name and hash")
	}
	if a.Tag() != Tag(a[:TagLen]) {
		t.Error("the tag is not the ID's first bytes")
	}
	set := load(t, Config{Username: "ada", Password: adaHash})
	if acct, ok := set.ByID(a); !ok || acct.Name != "ada" {
		t.Errorf("ByID: %v %v", acct, ok)
	}
}

// TestProfile: groups, email and display name load as configured, and
// what headers and pages could not carry as it is is refused.
func TestProfile(t *testing.T) {
	set := load(t, Config{Username: "ada", Password: adaHash, Groups: []string{"admins", "staff"}, Email: "ada@example.com", Name: "Ada Lovelace"})
	ada, _ := set.Lookup("ada")
	if ada.GroupList != "admins,staff" || !ada.HasGroup("staff") || ada.HasGroup("staf") || ada.Email != "ada@example.com" || ada.FullName != "Ada Lovelace" {
		t.Errorf("profile %+v", ada)
	}
	for _, bad := range []Config{
		{Groups: []string{"a,b"}}, {Groups: []string{"a b"}}, {Groups: []string{""}}, {Groups: []string{"x", "x"}},
		{Groups: []string{strings.Repeat("g", 65)}}, {Groups: []string{"a\x00"}},
		{Email: "nobody"}, {Email: "a@b@c"}, {Email: "@example.com"}, {Email: "a@example.com\r\nX: y"}, {Email: "a b@example.com"},
		{Name: "Ada\nLovelace"}, {Name: strings.Repeat("n", 257)},
	} {
		bad.Username, bad.Password = "ada", adaHash
		if _, err := Load([]Config{bad}, "miniapp", caddy.NewReplacer()); err == nil {
			t.Errorf("%+v loaded", bad)
		}
	}
}
