package users

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/session"
)

// TestInvite: a new user has no password until its invite is used,
// once; the store keeps the token's digest only; the account signs in
// with the password, normalised to NFC.
func TestInvite(t *testing.T) {
	clk := new(session.Clock)
	s := node(t, t.TempDir(), clk)
	ctx := context.Background()
	groups, email := []string{"staff"}, "grace@example.test"
	token, err := s.Create(ctx, "grace", Profile{Groups: &groups, Email: &email}, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range s.Records.Realm.RecordKeys() {
		if strings.Contains(key, token) || strings.Contains(string(s.Records.Get(key)), token) {
			t.Errorf("the store holds the token in %s", key)
		}
	}
	acct, ok := s.Config.Lookup("grace")
	if !ok || acct.HasPassword() || acct.GroupList != "staff" || acct.Email != email || !acct.Managed {
		t.Fatalf("grace before her invite: %+v", acct)
	}
	r, err := s.Redeem(ctx, token)
	if err != nil || r.Name != "grace" || r.Purpose != PurposeInvite {
		t.Fatalf("redeem: %+v %v", r, err)
	}
	// "é" composed and decomposed are one password
	hash, err := s.Hash.Hash("caf\u00e9 au lait, sans sucre")
	if err != nil {
		t.Fatal(err)
	}
	after, err := s.Use(ctx, r, hash)
	if err != nil || after.ID == acct.ID || after.Stable != acct.Stable {
		t.Fatalf("use: %v, the same account ID %v, the same stable ID %v", err, after.ID == acct.ID, after.Stable == acct.Stable)
	}
	// a new password: a new account ID for its sessions, the same stable
	// ID for what hangs on the account
	changed, err := s.SetPassword(ctx, after, hash)
	if err != nil || changed.ID == after.ID || changed.Stable != after.Stable {
		t.Fatalf("a password change: %v, the same account ID %v, the same stable ID %v", err, changed.ID == after.ID, changed.Stable == after.Stable)
	}
	// a change from a session that saw the account before: refused
	if _, err := s.SetPassword(ctx, after, hash); !errors.Is(err, ErrChanged) {
		t.Errorf("a change of an account changed since: %v", err)
	}
	if got, reason, err := s.Config.Check("grace", "cafe\u0301 au lait, sans sucre"); got == nil || err != nil {
		t.Errorf("grace's password, decomposed: %q %v", reason, err)
	}
	if _, err := s.Redeem(ctx, token); !errors.Is(err, ErrToken) {
		t.Errorf("a used token: %v", err)
	}
	if _, err := s.Use(ctx, r, hash); !errors.Is(err, ErrToken) {
		t.Errorf("a used token, used again: %v", err)
	}
}

// TestTokens: a forged, expired, replaced or other realm's token opens
// nothing; one made on node A is used on node B; a reset ends the
// password and its sessions' account ID.
func TestTokens(t *testing.T) {
	clk := new(session.Clock)
	dir := t.TempDir()
	a, b := node(t, dir, clk), node(t, dir, clk)
	ctx := context.Background()
	token, err := a.Create(ctx, "grace", Profile{}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	// the last of 43 characters carries 4 bits: another valid one
	last := "A"
	if strings.HasSuffix(token, last) {
		last = "E"
	}
	for _, forged := range []string{"", "x", strings.Repeat("A", 43), token[:42] + last} {
		if _, err := b.Redeem(ctx, forged); !errors.Is(err, ErrToken) {
			t.Errorf("forged %q: %v", forged, err)
		}
	}
	r, err := b.Redeem(ctx, token)
	if err != nil {
		t.Fatalf("a token of node A on node B: %v", err)
	}
	hash, _ := b.Hash.Hash("a long enough password here")
	first, err := b.Use(ctx, r, hash)
	if err != nil {
		t.Fatal(err)
	}
	reset, err := a.Reset(ctx, "grace", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	again, ok := a.Lookup("grace")
	if !ok || again.HasPassword() || again.ID == first.ID {
		t.Errorf("after a reset: %+v", again)
	}
	clk.Advance(time.Hour)
	if _, err := a.Redeem(ctx, reset); !errors.Is(err, ErrToken) {
		t.Errorf("an expired token: %v", err)
	}
	if a.Records.Get(indexKey(digestOf(reset))) != nil {
		t.Error("an expired token's index stays")
	}
	second, err := a.Reset(ctx, "grace", 0)
	if err != nil {
		t.Fatal(err)
	}
	third, _ := a.Reset(ctx, "grace", 0)
	if _, err := a.Redeem(ctx, second); !errors.Is(err, ErrToken) {
		t.Errorf("a replaced token: %v", err)
	}
	if _, err := a.Redeem(ctx, third); err != nil {
		t.Errorf("the latest token: %v", err)
	}
	other := node(t, t.TempDir(), clk)
	if _, err := other.Redeem(ctx, third); !errors.Is(err, ErrToken) {
		t.Errorf("another realm's store: %v", err)
	}
	if _, err := nodeIn(t, dir, clk, "q", time.Hour).Redeem(ctx, third); !errors.Is(err, ErrToken) {
		t.Errorf("another realm on the same store: %v", err)
	}
}

// TestStaleNode: a token made on node A is judged on node B by the
// store, not by B's copy from before the change: a reset's link works
// on a node that has not synced yet, and is not thrown away there.
func TestStaleNode(t *testing.T) {
	clk := new(session.Clock)
	dir := t.TempDir()
	a, b := nodeIn(t, dir, clk, "r", time.Hour), nodeIn(t, dir, clk, "r", 2*time.Hour)
	ctx := context.Background()
	invite, err := a.Create(ctx, "grace", Profile{}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	hash, _ := b.Hash.Hash("a long enough password here")
	r, err := b.Redeem(ctx, invite)
	if err != nil {
		t.Fatalf("an invite of node A on node B: %v", err)
	}
	if _, err := b.Use(ctx, r, hash); err != nil {
		t.Fatal(err)
	}
	reset, err := a.Reset(ctx, "grace", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if acct, ok := b.Lookup("grace"); !ok || !acct.HasPassword() {
		t.Fatal("node B saw the reset at once: the test needs a stale copy")
	}
	r, err = b.Redeem(ctx, reset)
	if err != nil {
		t.Fatalf("a reset of node A on a stale node B: %v", err)
	}
	if _, err := b.Use(ctx, r, hash); err != nil {
		t.Errorf("a reset of node A used on a stale node B: %v", err)
	}
}

// TestManage: names are checked, a configured name is the config's, a
// name is taken once; a change shows on the account; a removed user is
// gone, and made again is another account.
func TestManage(t *testing.T) {
	clk := new(session.Clock)
	s := node(t, t.TempDir(), clk)
	ctx := context.Background()
	for name, want := range map[string]error{"ada": ErrInConfig, "ADA": ErrInConfig, "github:1": ErrName, "": ErrName, "a b": ErrName, strings.Repeat("x", 65): ErrName} {
		if _, err := s.Create(ctx, name, Profile{}, 0); !errors.Is(err, want) {
			t.Errorf("create %q: %v, want %v", name, err, want)
		}
	}
	if _, err := s.Create(ctx, "grace", Profile{}, 0); err != nil {
		t.Fatal(err)
	}
	for _, again := range []string{"grace", "Grace"} {
		if _, err := s.Create(ctx, again, Profile{}, 0); !errors.Is(err, ErrExists) {
			t.Errorf("%s after grace: %v", again, err)
		}
	}
	bad := []string{"a,b"}
	if err := s.Update(ctx, "grace", Profile{Groups: &bad}); err == nil {
		t.Error("a group with a comma")
	}
	groups := []string{"ops"}
	if err := s.Update(ctx, "grace", Profile{Groups: &groups}); err != nil {
		t.Fatal(err)
	}
	before, _ := s.Lookup("grace")
	if before.GroupList != "ops" {
		t.Errorf("groups after the change: %q", before.GroupList)
	}
	if list := s.List(); len(list) != 1 || list[0].Name != "grace" || list[0].Password || list[0].Groups[0] != "ops" {
		t.Errorf("list: %+v", list)
	}
	gone, err := s.Remove(ctx, "grace")
	if err != nil || gone.ID != before.ID {
		t.Fatalf("remove: %v", err)
	}
	if _, ok := s.Lookup("grace"); ok {
		t.Error("a removed user is found")
	}
	if _, err := s.Remove(ctx, "grace"); !errors.Is(err, ErrNoUser) {
		t.Errorf("remove twice: %v", err)
	}
	if _, err := s.Create(ctx, "grace", Profile{}, 0); err != nil {
		t.Fatal(err)
	}
	if again, _ := s.Lookup("grace"); again.ID == before.ID {
		t.Error("grace made again is the removed account")
	}
	if err := s.Update(ctx, "ada", Profile{Groups: &groups}); !errors.Is(err, ErrInConfig) {
		t.Errorf("a change of a configured user: %v", err)
	}
}
