package web

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// TestFail answers a refusal with its one-line reason in the client's
// format, and anything else as a 500 that logs the cause and never
// shows it.
func TestFail(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	site := Site{Logger: zap.New(core), CSP: "default-src 'none'"}
	for f, want := range map[Format]string{Text: "too long\n", JSON: `{"error":"too long"}`, HTML: "<h1>400 Bad Request</h1>"} {
		w := httptest.NewRecorder()
		if err := site.Fail(w, httptest.NewRequest("GET", "/", nil), f, Reject(400, "too long")); err != nil {
			t.Fatal(err)
		}
		if w.Code != 400 || !strings.Contains(w.Body.String(), want) {
			t.Errorf("format %d: %d %q", f, w.Code, w.Body.String())
		}
		if f == HTML && w.Header().Get("Content-Security-Policy") != "default-src 'none'" {
			t.Errorf("page CSP %q", w.Header().Get("Content-Security-Policy"))
		}
	}
	w := httptest.NewRecorder()
	if err := site.Fail(w, httptest.NewRequest("GET", "/x", nil), JSON, errors.New("secret cause")); err != nil {
		t.Fatal(err)
	}
	if w.Code != 500 || strings.Contains(w.Body.String(), "secret") || logs.FilterMessage("internal error").Len() != 1 {
		t.Errorf("internal: %d %q, %d logged", w.Code, w.Body.String(), logs.Len())
	}
	if Describe(429) != "429 Too Many Requests" || (Site{}).Policy() != PageCSP {
		t.Error("Describe or Policy")
	}
}

// TestRefuse: where a handle_errors route would take a refusal (and
// Caddy log the request's URI), Fail hands it on and Refuse answers it
// itself; an internal error is a 500 without its cause.
func TestRefuse(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	site := Site{Logger: zap.New(core)}
	srv := &caddyhttp.Server{Errors: &caddyhttp.HTTPErrorConfig{Routes: caddyhttp.RouteList{caddyhttp.Route{}}}}
	r := httptest.NewRequest("GET", "/login/with/x/callback?code=c", nil)
	r = r.WithContext(context.WithValue(r.Context(), caddyhttp.ServerCtxKey, srv))
	if err := site.Fail(httptest.NewRecorder(), r, Text, Reject(400, "bad")); err == nil {
		t.Fatal("Fail answered a refusal that a handle_errors route takes")
	}
	w := httptest.NewRecorder()
	if err := site.Refuse(w, r, Text, Reject(400, "bad")); err != nil || w.Code != 400 || w.Body.String() != "bad\n" {
		t.Errorf("Refuse: %v %d %q", err, w.Code, w.Body.String())
	}
	w = httptest.NewRecorder()
	if err := site.Refuse(w, r, JSON, errors.New("secret cause")); err != nil || w.Code != 500 || strings.Contains(w.Body.String(), "secret") ||
		logs.FilterMessage("internal error").Len() != 1 {
		t.Errorf("Refuse of an internal error: %v %d %q", err, w.Code, w.Body.String())
	}
}
