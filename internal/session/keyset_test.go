package session

import (
	"strings"
	"testing"
)

// TestKeySets reads a stored key set and configured keys, and names
// what is wrong with one that does not read.
func TestKeySets(t *testing.T) {
	data, err := NewKeySet()
	if err != nil {
		t.Fatal(err)
	}
	stored, err := OpenKeySet(data, "r")
	if err != nil {
		t.Fatal(err)
	}
	sealed := stored.SealData(PurposeRecord, []byte("x"), "k")
	if got, _, err := stored.OpenData(PurposeRecord, sealed, "k"); err != nil || string(got) != "x" {
		t.Errorf("a stored key set's ring: %q %v", got, err)
	}
	for data, want := range map[string]string{`{"keys":[]}`: "no keys", `{`: "key set", `{"keys":["short"]}`: "key set"} {
		if _, err := OpenKeySet([]byte(data), "r"); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v", data, err)
		}
	}
	secret := NewSecret()
	ring, err := ParseKeys([]string{"{env.KEY}"}, "r", func(string) string { return secret })
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := ring.OpenData(PurposeRecord, sealed, "k"); err == nil {
		t.Error("another key opened the record")
	}
	if _, err := ParseKeys([]string{secret, "short"}, "r", func(s string) string { return s }); err == nil || !strings.Contains(err.Error(), "secret_key 2") {
		t.Errorf("a short second key: %v", err)
	}
}
