package testhash

import (
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp/caddyauth"
)

// TestHashes: Caddy's comparers accept the hashes of the password and
// refuse another.
func TestHashes(t *testing.T) {
	for name, tc := range map[string]struct {
		hash string
		cmp  caddyauth.Comparer
	}{
		"bcrypt":   {Bcrypt("pw"), caddyauth.BcryptHash{}},
		"argon2id": {Argon2id("pw"), caddyauth.Argon2idHash{}},
	} {
		if ok, err := tc.cmp.Compare([]byte(tc.hash), []byte("pw")); !ok || err != nil {
			t.Errorf("%s: the password refused: %v", name, err)
		}
		if ok, _ := tc.cmp.Compare([]byte(tc.hash), []byte("other")); ok {
			t.Errorf("%s: another password accepted", name)
		}
	}
}
