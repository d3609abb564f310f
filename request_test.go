package miniapp

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func TestUnsafeNext(t *testing.T) {
	a := newApp(t, "", nil)
	for _, next := range []string{
		"//evil.example", "///evil.example", "/\\evil.example", "\\\\evil.example", "https://evil.example/",
		"javascript:alert(1)", "evil.example", "/%2F%2Fevil.example", "/%5Cevil.example", "/ok\r\nSet-Cookie: x=1",
		"/\tevil", "http:/evil.example", " /x", "/caf\u00e9", "",
	} {
		w := a.do(request{method: "POST", target: "/login", contentType: form,
			body: "username=ada&password=" + adaPassword + "&next=" + url.QueryEscape(next)})
		if w.Code != 303 || w.Header().Get("Location") != "/profile" {
			t.Errorf("next %q: status %d Location %q, want /profile", next, w.Code, w.Header().Get("Location"))
		}
	}
}

func TestBodyLimit(t *testing.T) {
	a := newApp(t, "", func(h *Handler) { h.MaxBodySize = 10 })
	w := a.do(request{method: "POST", target: "/hello", contentType: form, body: "name=12345"})
	if w.Code != 200 {
		t.Errorf("10 bytes: %d", w.Code)
	}
	w = a.do(request{method: "POST", target: "/hello", contentType: form, body: "name=123456"})
	if w.Code != 413 {
		t.Errorf("11 bytes: %d", w.Code)
	}
}

// TestBodyLimitFromCaddy checks that a 413 raised by Caddy's own
// request_body reader is passed on as 413.
func TestBodyLimitFromCaddy(t *testing.T) {
	a := newApp(t, "", nil)
	r := withCaddyContext(httptest.NewRequest("POST", "/hello", strings.NewReader("name=123456")), false)
	r.Header.Set("Content-Type", form)
	r.ContentLength = -1
	r.Body = errReader{caddyhttp.Error(413, &http.MaxBytesError{Limit: 5})}
	w := httptest.NewRecorder()
	if err := a.h.ServeHTTP(w, r, nextHandler); err != nil || w.Code != 413 {
		t.Fatalf("got %v, %d", err, w.Code)
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

func (e errReader) Close() error { return nil }
