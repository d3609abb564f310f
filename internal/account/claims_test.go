package account

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
)

// TestClaim refuses, within one load, a user name that two sets of one
// realm give different hashes; another realm, the same hash or another
// load is fine, and a load's claims go when it ends.
func TestClaim(t *testing.T) {
	load := func(hash string) *Set {
		s, err := Load([]Config{{Username: "ada", Password: hash}}, "r", caddy.NewReplacer())
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	one, two := load(adaHash), load(graceHash)
	ctx, cancel := context.WithCancel(context.Background())
	if err := one.Claim(ctx, "r"); err != nil {
		t.Fatal(err)
	}
	if err := one.Claim(ctx, "r"); err != nil {
		t.Errorf("the same hash again: %v", err)
	}
	if err := two.Claim(ctx, "other"); err != nil {
		t.Errorf("another realm: %v", err)
	}
	if err := two.Claim(ctx, "r"); err == nil || !strings.Contains(err.Error(), `user "ada" of realm "r"`) {
		t.Errorf("another hash in the realm: %v", err)
	}
	next, cancelNext := context.WithCancel(context.Background())
	defer cancelNext()
	if err := two.Claim(next, "r"); err != nil {
		t.Errorf("another load: %v", err)
	}
	cancel()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		claims.Lock()
		_, kept := claims.loads[ctx.Done()]
		claims.Unlock()
		if !kept {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the claims of a load that ended are kept")
		}
	}
	if err := two.Claim(context.Background(), "r"); err != nil {
		t.Errorf("a context that never ends: %v", err)
	}
}
