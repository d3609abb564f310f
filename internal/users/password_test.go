package users

import (
	"strings"
	"testing"

	"github.com/caddy-miniapp/miniapp/internal/account"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/caddyauth"
)

// TestRules: the password rules, each named.
func TestRules(t *testing.T) {
	r := Rules{Min: 15, Hasher: Argon2id, Realm: "miniapp", Host: "auth.example.test"}
	for pw, want := range map[string]string{
		"short":                    "at least 15 characters",
		"ééééééééééééééé":          "",
		strings.Repeat("x", 1025):  "at most 1024 bytes",
		"Grace-Hopper-1906":        "",
		"grace-hopper-19":          "",
		"AUTH.EXAMPLE.TEST":        "user name, the realm",
		"iloveyou1234567":          "",
		"correct horse battery!":   "",
		strings.Repeat("a", 15):    "",
		"qwertyuiopasdfg":          "",
		"grace-the-admin-x":        "",
		"abc\x00defghijklmnopq":    "text",
		strings.Repeat("\xff", 16): "text",
		"1qaz2wsx3edc4rfv":         "most common",
		"QAZWSXEDCRFVTGB":          "most common",
	} {
		err := r.Check("grace-the-admin", pw)
		if got := ""; err != nil {
			got = err.Error()
			if want == "" || !strings.Contains(got, want) {
				t.Errorf("%q: %q, want %q", pw, got, want)
			}
		} else if want != "" {
			t.Errorf("%q accepted, want %q", pw, want)
		}
	}
	if err := r.Check("grace-the-admin", "GRACE-THE-ADMIN"); err == nil || !strings.Contains(err.Error(), "user name") {
		t.Errorf("the user's name: %v", err)
	}
	eight := Rules{Min: 8, Hasher: Bcrypt}
	for pw, ok := range map[string]bool{"password": false, "iloveyou": false, "tr0ub4dor&3": true, strings.Repeat("x", 73): false} {
		if err := eight.Check("grace", pw); (err == nil) != ok {
			t.Errorf("%q with 8 and bcrypt: %v", pw, err)
		}
	}
	if len(common()) != 10000 {
		t.Errorf("the common list has %d passwords", len(common()))
	}
}

// TestHash: both hashers' hashes are checked by Caddy's comparers, and
// one password hashed twice gives two hashes.
func TestHash(t *testing.T) {
	for _, h := range []Hasher{Argon2id, Bcrypt} {
		one, err := h.Hash("a long enough password")
		two, _ := h.Hash("a long enough password")
		if err != nil || one == two {
			t.Fatalf("%s: %v, the same hash twice %v", h, err, one == two)
		}
		acct, err := account.Managed("r", account.ManagedConfig{Name: "x", Hash: one})
		if err != nil {
			t.Fatal(err)
		}
		if ok, err := acct.Comparer.Compare([]byte(one), []byte("a long enough password")); !ok || err != nil {
			t.Errorf("%s: Caddy's comparer refused its hash: %v", h, err)
		}
	}
	// argon2id: caddy hash-password's parameters, a salt of its own
	hash, _ := Argon2id.Hash("a long enough password")
	parts, fake := strings.Split(hash, "$"), strings.Split(string(caddyauth.Argon2idHash{}.FakeHash()), "$")
	if len(parts) != 6 || parts[3] != "m=47104,t=1,p=1" || len(parts[4]) != 22 || parts[4] == fake[4] || len(parts[5]) != 43 {
		t.Errorf("an argon2id hash: %s", hash)
	}
}
