// Package testreq gives a test's request what Caddy's server puts in a
// request's context, for the tests of every package that serves one.
// Nothing outside tests uses it.
package testreq

import (
	"context"
	"net/http"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// Caddy adds a replacer, the vars with the client IP ip and a server to
// r's context, as Caddy's server does; errorRoutes says whether the
// server has handle_errors routes.
func Caddy(r *http.Request, errorRoutes bool, ip string) *http.Request {
	repl := caddy.NewReplacer()
	ctx := context.WithValue(r.Context(), caddy.ReplacerCtxKey, repl)
	ctx = context.WithValue(ctx, caddyhttp.VarsCtxKey, map[string]any{caddyhttp.ClientIPVarKey: ip})
	srv := &caddyhttp.Server{}
	if errorRoutes {
		srv.Errors = &caddyhttp.HTTPErrorConfig{Routes: caddyhttp.RouteList{{}}}
	}
	ctx = context.WithValue(ctx, caddyhttp.ServerCtxKey, srv)
	return r.WithContext(ctx)
}
