package miniapp

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddy-miniapp/miniapp/internal/testhash"
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
)

// TestClaimUsers: in one config load, two handlers of one realm that
// give one user name different password hashes are refused, naming the
// user and the realm; the same hash, another realm, or another load (a
// node of a rolling password change) is fine.
func TestClaimUsers(t *testing.T) {
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	other, cancelOther := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancelOther()
	provision := func(ctx caddy.Context, realm, hash string) error {
		h := &Handler{Accounts: []Account{{Username: "ada", Password: hash}, {Username: "grace", Password: graceHash}}, SecretKeys: []string{testKey}, Realm: realm}
		err := h.provision(ctx, &certmagic.FileStorage{Path: t.TempDir()}, zap.NewNop())
		t.Cleanup(func() { _ = h.Cleanup() })
		return err
	}
	if err := provision(ctx, "claims", adaHash); err != nil {
		t.Fatal(err)
	}
	if err := provision(ctx, "claims", adaHash); err != nil {
		t.Errorf("the same hash in a second handler of the realm: %v", err)
	}
	if err := provision(ctx, "claims-other", testhash.Bcrypt(adaPassword)); err != nil {
		t.Errorf("another hash in another realm: %v", err)
	}
	if err := provision(other, "claims", testhash.Bcrypt(adaPassword)); err != nil {
		t.Errorf("another hash in another config load: %v", err)
	}
	// each HTTP server of a load provisions its routes with a child of
	// the load's context that carries the server
	server := ctx
	server.Context = context.WithValue(ctx.Context, caddyhttp.ServerCtxKey, "srv1")
	if err := provision(server, "claims", testhash.Bcrypt(adaPassword)); err == nil {
		t.Error("another hash for ada in another server of the same load")
	}
	err := provision(ctx, "claims", testhash.Bcrypt(adaPassword))
	if err == nil || !strings.Contains(err.Error(), `user "ada" of realm "claims"`) {
		t.Errorf("another hash for ada in the same realm and load: %v", err)
	}
}

// TestCaddySameNameRefused: the built Caddy refuses a Caddyfile whose two
// sites of the default realm, on two ports (two servers), give ada two
// hashes (what the README once showed as supported), and loads it once
// each site has its own realm.
func TestCaddySameNameRefused(t *testing.T) {
	binary := buildCaddy(t)
	home := t.TempDir()
	validate := func(realm string) (string, error) {
		config := fmt.Sprintf(`{
	admin off
	storage file_system %s
}
http://one.test {
	miniapp {
		user ada %s
	}
}
http://two.test:8081 {
	miniapp {
		user ada %s
		%s
	}
}
`, filepath.Join(home, "storage"), adaHash, testhash.Bcrypt(adaPassword), realm)
		file := filepath.Join(t.TempDir(), "Caddyfile")
		if err := os.WriteFile(file, []byte(config), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(binary, "validate", "--config", file, "--adapter", "caddyfile")
		cmd.Env = append(os.Environ(), "HOME="+home)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := validate(""); err == nil || !strings.Contains(out, `user \"ada\" of realm \"miniapp\" has a different password hash`) {
		t.Errorf("two hashes for ada in one realm: %v\n%s", err, out)
	}
	if out, err := validate("realm two"); err != nil {
		t.Errorf("each site its own realm: %v\n%s", err, out)
	}
}
