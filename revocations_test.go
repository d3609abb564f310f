package miniapp

import (
	"context"
	"errors"
	"io/fs"
	"testing"
	"time"
)

func TestRevocationsPrune(t *testing.T) {
	a := newApp(t, "", func(h *Handler) { h.SessionLifetime = 0 })
	c := a.login("ada", adaPassword, false)
	s, _ := a.h.keys.Open(c.Value, "miniapp_session")
	a.do(request{method: "POST", target: "/logout", cookie: c})
	ctx := context.Background()
	keys, err := a.storage.List(ctx, revokedPrefix, false)
	if err != nil || len(keys) != 1 {
		t.Fatalf("revocation not stored: %v %v", keys, err)
	}
	if err := a.h.store.sync(ctx); err != nil || !a.h.store.Revoked(s) {
		t.Fatalf("revocation lost by sync: %v", err)
	}

	advance(t, 12*time.Hour+time.Second)
	if err := a.h.store.sync(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := a.storage.Load(ctx, keys[0]); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("expired revocation still in storage: %v", err)
	}
	a.h.store.mu.RLock()
	n := len(a.h.store.sessions)
	a.h.store.mu.RUnlock()
	if n != 0 {
		t.Errorf("%d expired revocations kept in memory", n)
	}
}

// TestRevocationsFromOtherInstance checks that a logout written to the
// shared storage by another instance is in force here after a sync.
func TestRevocationsFromOtherInstance(t *testing.T) {
	dir := t.TempDir()
	a := newApp(t, dir, nil)
	c := a.login("ada", adaPassword, false)
	s, _ := a.h.keys.Open(c.Value, "miniapp_session")

	other := &Revocations{storage: a.storage, logger: a.h.logger, sessions: map[[16]byte]time.Time{},
		users: map[string]uint32{}, pending: map[string][]byte{}}
	other.Revoke(context.Background(), s)
	other.RevokeAll(context.Background(), "grace")

	if w := a.do(request{target: "/profile", cookie: c}); w.Code != 200 {
		t.Fatalf("before sync: %d", w.Code)
	}
	if err := a.h.store.sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	if w := a.do(request{target: "/profile", cookie: c}); w.Code != 401 {
		t.Errorf("after sync: %d", w.Code)
	}
	a.h.store.mu.RLock()
	gen := a.h.store.users["grace"]
	a.h.store.mu.RUnlock()
	if gen != 1 {
		t.Errorf("sign out everywhere of another instance not read")
	}
}
