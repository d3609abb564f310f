package oidc

import (
	"context"
	"testing"
	"time"

	filestore "github.com/caddy-miniapp/miniapp/store/storage"
	"github.com/caddyserver/certmagic"
)

// TestKeyRotation: a new key is listed before it signs; the old one
// stays listed until its tokens have expired.
func TestKeyRotation(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	set, err := f.p.keys()
	if err != nil || len(set.Keys) != 1 {
		t.Fatalf("first key: %v %v", set, err)
	}
	old := set.Keys[0].KID
	kid, err := f.p.Rotate(ctx)
	if err != nil || kid == old {
		t.Fatalf("Rotate: %q %v", kid, err)
	}
	set, _ = f.p.keys()
	if got := set.signing(f.clock.Now()).KID; got != old || len(set.listed(f.clock.Now())) != 2 {
		t.Errorf("right after Rotate: signs with %q, lists %d", got, len(set.listed(f.clock.Now())))
	}
	f.clock.Advance(PublishAhead + time.Second)
	set, _ = f.p.keys()
	if got := set.signing(f.clock.Now()).KID; got != kid || len(set.listed(f.clock.Now())) != 2 {
		t.Errorf("after PublishAhead: signs with %q, lists %d", got, len(set.listed(f.clock.Now())))
	}
	tok := f.exchange(t, "grafana", grafanaURI, f.code(t, "grafana", grafanaURI, "openid", f.signed(f.ada, 1)))
	f.idClaims(t, tok.IDToken)
	f.clock.Advance(f.p.idLifetime() + 2*time.Minute)
	if _, err := f.p.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	set, _ = f.p.keys()
	for _, k := range set.listed(f.clock.Now()) {
		if k.KID == old {
			t.Error("the first key is still listed after its tokens expired")
		}
	}
}

// TestKeysThatDoNotOpen: a realm's signing keys sealed with a key ring
// no longer configured are replaced at start, and the provider signs.
func TestKeysThatDoNotOpen(t *testing.T) {
	dir := t.TempDir()
	first := newFixtureOn(t, filestore.New(&certmagic.FileStorage{Path: dir}))
	old, err := first.p.keys()
	if err != nil {
		t.Fatal(err)
	}
	f := newFixtureOn(t, filestore.New(&certmagic.FileStorage{Path: dir}))
	set, err := f.p.keys()
	if err != nil || len(set.Keys) != 1 || set.Keys[0].KID == old.Keys[0].KID {
		t.Fatalf("keys after a new key ring: %v", err)
	}
	tok := f.exchange(t, "grafana", grafanaURI, f.code(t, "grafana", grafanaURI, "openid", f.signed(f.ada, 1)))
	f.idClaims(t, tok.IDToken)
}
