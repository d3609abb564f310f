package totp

import (
	"context"
	"encoding/hex"
	"fmt"
	"testing"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/session"
)

// TestTrusts: a user's trusted browsers are listed newest first while
// live, at most MaxTrusts (the oldest ends first), one ends by its ID
// (another user's ID ends nothing), and all end at once.
func TestTrusts(t *testing.T) {
	clk := new(session.Clock)
	s, _ := newService(t, t.TempDir(), time.Hour, clk)
	ctx := context.Background()
	ids := make([][16]byte, MaxTrusts+2)
	for i := range ids {
		ids[i] = [16]byte(session.Random(16))
		clk.Advance(time.Second)
		if err := s.Trust(ctx, "ada", Trust{ID: hex.EncodeToString(ids[i][:]), Device: fmt.Sprint("browser ", i), Created: clk.Now(),
			Expires: clk.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	list, err := s.Trusts("ada")
	if err != nil || len(list) != MaxTrusts || list[0].Device != fmt.Sprint("browser ", MaxTrusts+1) {
		t.Fatalf("ada's trusts: %d, newest %+v, %v", len(list), list[0], err)
	}
	if s.Trusted("ada", ids[0]) || s.Trusted("ada", ids[1]) || !s.Trusted("ada", ids[2]) || s.Trusted("grace", ids[2]) {
		t.Error("the oldest trusts did not end, or another user's is taken for ada's")
	}
	if ok, err := s.Untrust(ctx, "grace", hex.EncodeToString(ids[2][:])); ok || err != nil {
		t.Errorf("grace ended ada's trust: %v %v", ok, err)
	}
	if ok, err := s.Untrust(ctx, "ada", hex.EncodeToString(ids[2][:])); !ok || err != nil || s.Trusted("ada", ids[2]) {
		t.Errorf("ending one trust: %v %v", ok, err)
	}
	clk.Advance(time.Hour)
	if list, _ := s.Trusts("ada"); len(list) != 0 || s.Trusted("ada", ids[5]) {
		t.Errorf("expired trusts are listed: %d", len(list))
	}
	clk.Advance(-time.Hour)
	if err := s.UntrustAll(ctx, "ada"); err != nil || s.Trusted("ada", ids[5]) || s.Records.Get("trust:ada") != nil {
		t.Errorf("ending all: %v", err)
	}
}

// TestUntrustAllStale: ending every trust on a node that has not seen a
// trust made on another node moments ago ends it too.
func TestUntrustAllStale(t *testing.T) {
	clk := new(session.Clock)
	dir, secret := t.TempDir(), session.Random(32)
	a, _ := newService(t, dir, time.Hour, clk, secret)
	b, _ := newService(t, dir, 2*time.Hour, clk, secret)
	ctx := context.Background()
	id := [16]byte{7}
	if err := a.Trust(ctx, "ada", Trust{ID: hex.EncodeToString(id[:]), Expires: clk.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if b.Records.Get("trust:ada") != nil {
		t.Fatal("node B saw the trust at once: the test needs a stale copy")
	}
	if err := b.UntrustAll(ctx, "ada"); err != nil {
		t.Fatal(err)
	}
	if sealed, err := a.Records.Realm.ReadRecord(ctx, "trust:ada"); err != nil || sealed != nil {
		t.Errorf("the trust made on node A outlived node B's UntrustAll: %v", err)
	}
}
