package account

import (
	"strings"
	"testing"
)

// argonSample is an argon2id hash as Caddy makes it (its fake hash).
const argonSample = "$argon2id$v=19$m=47104,t=1,p=1$P2nzckEdTZ3bxCiBCkRTyA$xQL3Z32eo5jKl7u5tcIsnEKObYiyNZQQf5/4sAau6Pg"

// TestFakeLike: where no configured account has a password, the fake
// hash takes the managed accounts' parameters; otherwise it stays like
// the configured hashes.
func TestFakeLike(t *testing.T) {
	none := load(t, Config{Username: "grace", Links: []Link{{"github", "1"}}})
	if err := none.FakeLike(argonSample); err != nil || !strings.HasPrefix(string(none.fake.hash), "$argon2id$v=19$m=47104,t=1,p=1$") ||
		string(none.fake.hash) == argonSample {
		t.Errorf("the fake hash of a realm without passwords: %s %v", none.fake.hash, err)
	}
	some := load(t, Config{Username: "ada", Password: adaHash})
	if err := some.FakeLike(argonSample); err != nil || !strings.HasPrefix(string(some.fake.hash), "$2a$") || !some.Hashed() || none.Hashed() {
		t.Errorf("the fake hash of a realm with bcrypt passwords: %s %v", some.fake.hash, err)
	}
	if some.Like(argonSample) || !some.Like(adaHash) || !some.Like("$2b$"+adaHash[4:]) || !none.Like(argonSample) {
		t.Errorf("Like: %v %v %v", some.Like(argonSample), some.Like(adaHash), none.Like(argonSample))
	}
}

// TestManaged: a managed account's ID moves with its password's
// generation, its stable ID does not; its sub key is its immutable ID.
func TestManaged(t *testing.T) {
	m := ManagedConfig{Name: "mia", UID: [16]byte{1, 2, 3}, Groups: []string{"staff"}}
	a, err := Managed("r", m)
	if err != nil {
		t.Fatal(err)
	}
	m.Generation++
	b, _ := Managed("r", m)
	other, _ := Managed("r", ManagedConfig{Name: "mia", UID: [16]byte{9}})
	if a.ID == b.ID || a.Stable != b.Stable || other.Stable == a.Stable || a.SubjectKey() != "uid:01020300000000000000000000000000" ||
		!a.Managed || a.HasPassword() || a.GroupList != "staff" {
		t.Errorf("managed accounts: %+v %+v", a, b)
	}
	if _, err := Managed("r", ManagedConfig{Name: "mia", Hash: "plain"}); err == nil {
		t.Error("a managed account with a hash that is none")
	}
	if NFC("cafe\u0301") != "caf\u00e9" {
		t.Error("NFC")
	}
}

// TestRecordKey: a managed account's records are keyed by its immutable
// ID, which a new password keeps and a later account of the name does
// not share; no name of the Caddyfile makes such a key.
func TestRecordKey(t *testing.T) {
	m := ManagedConfig{Name: "mia:x", UID: [16]byte{1, 2, 3}}
	a, _ := Managed("r", m)
	m.Generation++
	changed, _ := Managed("r", m)
	later, _ := Managed("r", ManagedConfig{Name: "mia:x", UID: [16]byte{9}})
	configured := load(t, Config{Username: "mia:x", Password: adaHash}).users["mia:x"]
	sneaky := load(t, Config{Username: "@01020300000000000000000000000000:mia:x", Password: adaHash}).users["@01020300000000000000000000000000:mia:x"]
	key := a.RecordKey("totp")
	if key != "totp@01020300000000000000000000000000:mia:x" || changed.RecordKey("totp") != key || later.RecordKey("totp") == key ||
		configured.RecordKey("totp") != "totp:mia:x" || sneaky.RecordKey("totp") == key {
		t.Errorf("record keys: %q %q %q %q %q", key, changed.RecordKey("totp"), later.RecordKey("totp"), configured.RecordKey("totp"), sneaky.RecordKey("totp"))
	}
	for key, want := range map[string]string{key: "mia:x", "totp:mia:x": "mia:x", "totp:": ""} {
		if name, ok := RecordUser("totp", key); !ok || name != want {
			t.Errorf("RecordUser(%q) = %q, %v", key, name, ok)
		}
	}
	for _, key := range []string{"trust:mia", "totpx:mia", "totp@0102", "passkeys@01:mia"} {
		if name, ok := RecordUser("totp", key); ok {
			t.Errorf("RecordUser(%q) = %q", key, name)
		}
	}
}
