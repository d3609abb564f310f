package miniapp

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestKeyRotation(t *testing.T) {
	oldKey, newKey := testKey, base64.URLEncoding.EncodeToString(randomBytes(48))
	a := newApp(t, "", nil)
	c := a.login("ada", adaPassword, false)
	b := newApp(t, "", func(h *Handler) { h.SecretKeys = []string{newKey, oldKey} })
	if w := b.do(request{target: "/profile", cookie: c}); w.Code != 200 {
		t.Fatalf("old-key cookie after rotation: %d", w.Code)
	}
	fresh := b.login("ada", adaPassword, false)
	if w := a.do(request{target: "/profile", cookie: fresh}); w.Code != 401 {
		t.Errorf("a handler without the new key accepted its cookie: %d", w.Code)
	}
	dropped := newApp(t, "", func(h *Handler) { h.SecretKeys = []string{newKey} })
	if w := dropped.do(request{target: "/profile", cookie: c}); w.Code != 401 {
		t.Errorf("cookie of a removed key accepted: %d", w.Code)
	}
}

func TestKeysFromStorage(t *testing.T) {
	dir := t.TempDir()
	a := newApp(t, dir, func(h *Handler) { h.SecretKeys = nil })
	c := a.login("ada", adaPassword, false)
	b := newApp(t, dir, func(h *Handler) { h.SecretKeys = nil })
	if w := b.do(request{target: "/profile", cookie: c}); w.Code != 200 {
		t.Fatalf("second handler on the same storage rejected the cookie: %d", w.Code)
	}
	info, err := os.Stat(filepath.Join(dir, "miniapp", "miniapp", "keys.json"))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("keys file: %v %v", err, info)
	}
	other := newApp(t, "", func(h *Handler) { h.SecretKeys = nil })
	if w := other.do(request{target: "/profile", cookie: c}); w.Code != 401 {
		t.Errorf("handler with other storage accepted the cookie: %d", w.Code)
	}
	realm := newApp(t, dir, func(h *Handler) { h.SecretKeys, h.Realm = nil, "staff" })
	if w := realm.do(request{target: "/profile", cookie: c}); w.Code != 401 {
		t.Errorf("handler of another realm on the same storage accepted the cookie: %d", w.Code)
	}
	if _, err := os.Stat(filepath.Join(dir, "miniapp", "staff", "keys.json")); err != nil {
		t.Errorf("realm staff has no key set of its own: %v", err)
	}
}

func TestSealOpen(t *testing.T) {
	kr, err := newKeyring([][]byte{randomBytes(32)}, defaultRealm)
	if err != nil {
		t.Fatal(err)
	}
	s := &session{User: "ada é", ID: [16]byte(randomBytes(16)), Counter: 7, Account: accountTag(randomBytes(accountTagLen)),
		Issued: time.Unix(100, 0), Expires: time.Unix(200, 0), LastSeen: time.Unix(150, 0)}
	v := kr.seal(s, "c", "h")
	got, err := kr.open(v, "c", "h")
	if err != nil || got.User != s.User || got.ID != s.ID || got.Counter != 7 || got.Account != s.Account ||
		!got.Issued.Equal(s.Issued) || !got.Expires.Equal(s.Expires) || !got.LastSeen.Equal(s.LastSeen) {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	if _, err := kr.open(v, "c", "other.example"); err == nil {
		t.Error("a cookie opened for another host")
	}
	if _, err := kr.open(v, "d", "h"); err == nil {
		t.Error("a cookie opened under another cookie name")
	}
	if v2 := kr.seal(s, "c", "h"); v2 == v {
		t.Error("two seals of one session are equal: the nonce is not random")
	}
}

func TestDecodeSecret(t *testing.T) {
	key := randomBytes(32)
	for _, ok := range []string{
		base64.StdEncoding.EncodeToString(key), base64.RawStdEncoding.EncodeToString(key),
		base64.URLEncoding.EncodeToString(key), base64.RawURLEncoding.EncodeToString(key),
	} {
		if got, err := decodeSecret(ok); err != nil || string(got) != string(key) {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "short", base64.StdEncoding.EncodeToString(key[:31]), "!!!!" + base64.StdEncoding.EncodeToString(key)} {
		_, err := decodeSecret(bad)
		if err == nil {
			t.Errorf("%q accepted", bad)
		} else if bad != "" && strings.Contains(err.Error(), bad) {
			t.Errorf("error repeats the key: %v", err)
		}
	}
}
