package session

import (
	"strings"
	"testing"
)

// FuzzCookie opens arbitrary cookie values: no panic, and nothing but a
// cookie the keyring sealed is ever accepted.
func FuzzCookie(f *testing.F) {
	kr, err := NewKeyring([][]byte{Random(32)}, "miniapp")
	if err != nil {
		f.Fatal(err)
	}
	s := &Session{User: "ada", ID: [16]byte(Random(16))}
	good := kr.Seal(PurposeSession, s, "c", "h")
	f.Add(good)
	f.Add(good[:len(good)-1])
	f.Add("")
	f.Add("AAAA")
	f.Add(strings.Repeat("_", 300))
	f.Fuzz(func(t *testing.T, value string) {
		got, err := kr.Open(PurposeSession, value, "c", "h")
		if err == nil && value != good {
			// a value other than the sealed one may only open if it
			// decodes to the same bytes (base64 padding bits aside)
			if got.ID != s.ID || got.User != s.User {
				t.Fatalf("forged cookie %q accepted as %+v", value, got)
			}
		}
	})
}
