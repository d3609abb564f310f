package account

import (
	"strings"
	"testing"
)

// TestFakeHashLike: a fake hash keeps the algorithm and parameters of
// the hash it is made like, parses, and matches no password.
func TestFakeHashLike(t *testing.T) {
	for _, hash := range []string{adaHash, graceHash} {
		fake, err := fakeHashLike(hash)
		if err != nil {
			t.Fatal(err)
		}
		cmp, err := comparerFor(string(fake))
		if err != nil {
			t.Fatalf("fake %q does not parse: %v", fake, err)
		}
		if ok, err := cmp.Compare(fake, []byte("lovelace-1815")); ok || err != nil {
			t.Errorf("fake hash matched or failed: %v %v", ok, err)
		}
		prefix := strings.Join(strings.Split(hash, "$")[:4], "$")
		if strings.HasPrefix(hash, "$2") {
			prefix = hash[:7]
		}
		if !strings.HasPrefix(string(fake), prefix) || len(fake) != len(hash) || string(fake) == hash {
			t.Errorf("fake %q does not keep the parameters of %q", fake, hash)
		}
	}
}
