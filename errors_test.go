package miniapp

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/web"
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func TestErrorsWithHandleErrors(t *testing.T) {
	a := newApp(t, "", nil)
	r := withCaddyContext(httptest.NewRequest("GET", "/hello?name=%zz", nil), true)
	err := a.h.ServeHTTP(httptest.NewRecorder(), r, nextHandler)
	var he caddyhttp.HandlerError
	if !errors.As(err, &he) || he.StatusCode != 400 {
		t.Fatalf("want a caddyhttp.HandlerError with 400, got %#v", err)
	}

	r = withCaddyContext(httptest.NewRequest("PATCH", "/logout", nil), true)
	w := httptest.NewRecorder()
	err = a.h.ServeHTTP(w, r, nextHandler)
	if !errors.As(err, &he) || he.StatusCode != 405 || w.Header().Get("Allow") != "POST" {
		t.Fatalf("want 405 with Allow: POST, got %#v and Allow %q", err, w.Header().Get("Allow"))
	}
}

func TestErrorFormats(t *testing.T) {
	a := newApp(t, "", nil)
	w := a.do(request{target: "/hello?name=%zz", accept: "text/html"})
	if w.Code != 400 || !strings.Contains(w.Body.String(), "Invalid percent-encoding") || w.Header().Get("Content-Type") != "text/html; charset=utf-8" {
		t.Errorf("HTML error: %d %q %q", w.Code, w.Header().Get("Content-Type"), w.Body.String())
	}
	w = a.do(request{target: "/hello?name=%zz", accept: "application/json"})
	var out map[string]string
	if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil || out["error"] == "" {
		t.Errorf("JSON error: %q", w.Body.String())
	}
}

// TestErrorStatuses renders each error the module raises as a page for
// browsers, JSON for JSON clients and a line for others.
func TestErrorStatuses(t *testing.T) {
	a := newApp(t, "", func(h *Handler) {
		h.MaxBodySize = 64
		h.LoginLimit = &LoginLimit{Failures: 1, Window: caddy.Duration(time.Minute)}
	})
	a.do(request{method: "POST", target: "/login", contentType: form, body: "username=ada&password=x"})
	for status, req := range map[int]request{
		400: {target: "/hello?name=%zz"},
		401: {target: "/profile"},
		403: {method: "POST", target: "/hello", header: map[string]string{"Sec-Fetch-Site": "cross-site"}},
		405: {method: "PUT", target: "/hello"},
		413: {method: "POST", target: "/hello", contentType: form, body: "name=" + strings.Repeat("a", 80)},
		415: {method: "POST", target: "/hello", contentType: "text/csv", body: "a"},
		429: {method: "POST", target: "/login", contentType: form, body: "username=ada&password=" + adaPassword},
	} {
		html := req
		html.accept = "text/html"
		if w := a.do(html); status == 401 {
			if w.Code != 303 { // a browser is sent to the login page instead
				t.Errorf("401 as HTML: %d", w.Code)
			}
		} else if w.Code != status || !strings.Contains(w.Body.String(), "<h1>") || w.Header().Get("Content-Type") != web.TextHTML {
			t.Errorf("%d as HTML: %d %q", status, w.Code, w.Header().Get("Content-Type"))
		}
		js := req
		js.accept = "application/json"
		w := a.do(js)
		var out map[string]string
		if w.Code != status || json.Unmarshal(w.Body.Bytes(), &out) != nil || out["error"] == "" {
			t.Errorf("%d as JSON: %d %q", status, w.Code, w.Body.String())
		}
		if w := a.do(req); w.Code != status || w.Header().Get("Content-Type") != web.TextPlain || strings.Count(w.Body.String(), "\n") != 1 {
			t.Errorf("%d as text: %d %q", status, w.Code, w.Body.String())
		}
	}
}

func TestInternalError(t *testing.T) {
	a := newApp(t, "", nil)
	r := withCaddyContext(httptest.NewRequest("GET", "/hello", nil), false)
	w := httptest.NewRecorder()
	if err := a.h.app.Site.Internal(w, r, errors.New("disk on fire at /var/secret")); err != nil {
		t.Fatal(err)
	}
	if w.Code != 500 || w.Body.String() != "internal server error\n" {
		t.Errorf("client saw %d %q", w.Code, w.Body.String())
	}
	entries := a.logs.FilterMessage("internal error").All()
	if len(entries) != 1 || !strings.Contains(fmt.Sprint(entries[0].ContextMap()["error"]), "disk on fire") {
		t.Errorf("cause not logged: %v", entries)
	}
	r = withCaddyContext(httptest.NewRequest("GET", "/hello", nil), true)
	err := a.h.app.Site.Internal(httptest.NewRecorder(), r, errors.New("disk on fire"))
	var he caddyhttp.HandlerError
	if !errors.As(err, &he) || he.StatusCode != 500 || strings.Contains(err.Error(), "disk") {
		t.Errorf("with handle_errors: %v", err)
	}
}
