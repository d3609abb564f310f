package miniapp

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddy-miniapp/miniapp/internal/routes"
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// benchWriter is a ResponseWriter that keeps nothing between requests
// but its header map, so the allocations counted are the handler's own.
type benchWriter struct {
	header http.Header
	status int
	n      int
}

func (w *benchWriter) Header() http.Header         { return w.header }
func (w *benchWriter) WriteHeader(status int)      { w.status = status }
func (w *benchWriter) Write(b []byte) (int, error) { w.n += len(b); return len(b), nil }

// requestContext gives a request a replacer of its own, with a provider
// in caddyVars' place, and variables of its own, as Caddy's server does:
// the handler adds to both. Making them costs allocations of Caddy's (9)
// that every route's figures include.
type requestContext struct {
	context.Context
	repl *caddy.Replacer
	vars map[string]any
}

// Value is the request's replacer or variables for their keys, else the
// context's value.
func (c *requestContext) Value(key any) any {
	switch key {
	case caddy.ReplacerCtxKey:
		return c.repl
	case caddyhttp.VarsCtxKey:
		return c.vars
	}
	return c.Context.Value(key)
}

// caddyVars stands for the provider of Caddy's HTTP placeholders, which
// every request's replacer has before the handler's.
func caddyVars(string) (any, bool) { return nil, false }

// benchRoute measures ServeHTTP for one request, built once, as Caddy
// would hand it over (replacer, vars, server in the context).
func benchRoute(b *testing.B, a *testApp, req request, want int) {
	r := httptest.NewRequest(req.method, req.target, nil)
	if req.https {
		r = httptest.NewRequest(req.method, "https://example.com"+req.target, nil)
	}
	if req.accept != "" {
		r.Header.Set("Accept", req.accept)
	}
	if req.cookie != nil {
		r.AddCookie(req.cookie)
	}
	r = withClientIP(withCaddyContext(r, false), a.ip)
	ctx := &requestContext{Context: r.Context()}
	r = r.WithContext(ctx)
	w := &benchWriter{header: http.Header{}}
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		w.WriteHeader(299)
		return nil
	})
	b.ReportAllocs()
	for b.Loop() {
		clear(w.header)
		ctx.repl = caddy.NewReplacer()
		ctx.repl.Map(caddyVars)
		ctx.vars = map[string]any{caddyhttp.ClientIPVarKey: a.ip}
		if err := a.h.ServeHTTP(w, r, next); err != nil || w.status != want {
			b.Fatalf("status %d, error %v", w.status, err)
		}
	}
}

func BenchmarkRoutes(b *testing.B) {
	a := newApp(b, "", func(h *Handler) { h.Protect = []string{"/private/*"} })
	c := a.login("ada", adaPassword, true)
	for _, bc := range []struct {
		name string
		req  request
		want int
	}{
		{"hello", request{method: "GET", target: "/hello?name=World"}, 200},
		{"hello_json", request{method: "GET", target: "/hello?name=World", accept: "application/json"}, 200},
		{"login_page", request{method: "GET", target: "/login", accept: "text/html"}, 200},
		{"profile_json", request{method: "GET", target: "/profile", accept: "application/json", cookie: c, https: true}, 200},
		{"profile_html", request{method: "GET", target: "/profile", accept: "text/html", cookie: c, https: true}, 200},
		{"profile_no_session", request{method: "GET", target: "/profile"}, 401},
		{"protected_with_session", request{method: "GET", target: "/private/report.pdf", cookie: c, https: true}, 299},
		{"auth_with_session", request{method: "GET", target: routes.AuthPath, cookie: c, https: true, header: map[string]string{
			"X-Forwarded-Proto": "https", "X-Forwarded-Host": "example.com", "X-Forwarded-Uri": "/app/page"}}, 200},
		{"passthrough_no_cookie", request{method: "GET", target: "/index.html"}, 299},
	} {
		b.Run(bc.name, func(b *testing.B) { benchRoute(b, a, bc.req, bc.want) })
	}
}

// BenchmarkSession is the session check alone: cookie decode, AEAD open,
// expiry and revocation lookup.
func BenchmarkSession(b *testing.B) {
	a := newApp(b, "", nil)
	c := a.login("ada", adaPassword, true)
	r := httptest.NewRequest("GET", "https://example.com/", nil)
	r.AddCookie(c)
	b.ReportAllocs()
	for b.Loop() {
		if a.h.sessionOf(r, routes.WireOf(r)) == nil {
			b.Fatal("no session")
		}
	}
}

// BenchmarkLogout measures a logout, each with its own session.
func BenchmarkLogout(b *testing.B) {
	a := newApp(b, "", nil)
	var cookies []*http.Cookie
	for range 64 {
		cookies = append(cookies, a.login("ada", adaPassword, true))
	}
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		r := withClientIP(withCaddyContext(httptest.NewRequest("POST", "https://example.com/logout", strings.NewReader("")), false), a.ip)
		r.AddCookie(cookies[i%len(cookies)])
		i++
		w := &benchWriter{header: http.Header{}}
		if err := a.h.ServeHTTP(w, r, nil); err != nil || w.status != 303 {
			b.Fatalf("status %d, error %v", w.status, err)
		}
	}
}
