package main

import (
	"testing"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
)

// TestBuild: this build has the module, its stores and admin API, the
// standard modules the README's Caddyfile uses, and `caddy miniapp`.
func TestBuild(t *testing.T) {
	for _, id := range []string{"http.handlers.miniapp", "http.handlers.miniapp.stores.storage", "http.handlers.miniapp.stores.redis",
		"admin.api.miniapp", "http.handlers.file_server", "http.handlers.reverse_proxy", "http.encoders.gzip"} {
		if _, err := caddy.GetModule(id); err != nil {
			t.Errorf("module %s: %v", id, err)
		}
	}
	if _, ok := caddycmd.Commands()["miniapp"]; !ok {
		t.Error("no caddy miniapp command")
	}
}
