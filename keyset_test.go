package miniapp

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"testing"

	"github.com/caddy-miniapp/miniapp/internal/session"
)

func TestKeyRotation(t *testing.T) {
	oldKey, newKey := testKey, base64.URLEncoding.EncodeToString(session.Random(48))
	// one store, as sessions are bound to the store's generation
	dir := t.TempDir()
	a := newApp(t, dir, nil)
	c := a.login("ada", adaPassword, false)
	b := newApp(t, dir, func(h *Handler) { h.SecretKeys = []string{newKey, oldKey} })
	if w := b.do(request{target: "/profile", cookie: c}); w.Code != 200 {
		t.Fatalf("old-key cookie after rotation: %d", w.Code)
	}
	fresh := b.login("ada", adaPassword, false)
	if w := a.do(request{target: "/profile", cookie: fresh}); w.Code != 401 {
		t.Errorf("a handler without the new key accepted its cookie: %d", w.Code)
	}
	dropped := newApp(t, dir, func(h *Handler) { h.SecretKeys = []string{newKey} })
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
