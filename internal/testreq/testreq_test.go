package testreq

import (
	"net/http/httptest"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func TestCaddy(t *testing.T) {
	r := Caddy(httptest.NewRequest("GET", "/", nil), true, "192.0.2.9")
	if _, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); !ok {
		t.Error("no replacer")
	}
	if ip, _ := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string); ip != "192.0.2.9" {
		t.Errorf("client IP %q", ip)
	}
	if srv, _ := r.Context().Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server); srv == nil || srv.Errors == nil {
		t.Error("no server with handle_errors routes")
	}
	if srv, _ := Caddy(httptest.NewRequest("GET", "/", nil), false, "").Context().Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server); srv == nil || srv.Errors != nil {
		t.Error("a server without handle_errors routes has some")
	}
}
