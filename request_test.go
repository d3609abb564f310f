package miniapp

import (
	"errors"
	"maps"
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

// TestNegotiate picks the response format from Accept, then from the
// request's own Content-Type.
func TestNegotiate(t *testing.T) {
	for _, tt := range []struct {
		accept, contentType string
		want                format
	}{
		{"", "", formatText},
		{"*/*", "", formatText},
		{"text/html", "", formatHTML},
		{"application/json", "", formatJSON},
		{"text/html, application/json", "", formatJSON},
		{"text/html, application/json;q=0.5", "", formatHTML},
		{"application/json;q=0, text/html;q=0.1", "", formatHTML},
		{"application/json;q=bad", "", formatText},
		{"TEXT/HTML", "", formatHTML},
		{"", "application/json; charset=utf-8", formatJSON},
		{"text/html", "application/json", formatHTML},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		if tt.accept != "" {
			r.Header.Set("Accept", tt.accept)
		}
		if tt.contentType != "" {
			r.Header.Set("Content-Type", tt.contentType)
		}
		if got := negotiate(r); got != tt.want {
			t.Errorf("Accept %q Content-Type %q: %v, want %v", tt.accept, tt.contentType, got, tt.want)
		}
	}
}

// TestReadFields parses a form or JSON body once into the named fields,
// and refuses what does not parse with the one-line reason.
func TestReadFields(t *testing.T) {
	for _, tt := range []struct {
		contentType, body string
		want              fields
		status            int
		reason            string
	}{
		{form, "a=1&b=&b=2&c=3", fields{"a": "1", "b": "2"}, 0, ""},
		{form, "a=%41+b", fields{"a": "A b"}, 0, ""},
		{form, "a=%zz", nil, 400, reasonEscape},
		{form, "a=1;b=2", nil, 400, reasonSemicolon},
		{form, strings.Repeat("x=1&", maxParams), nil, 400, reasonManyParams},
		{"application/json", `{"a":"1","b":null,"c":5}`, fields{"a": "1"}, 0, ""},
		{"application/json", `{"a":5}`, nil, 400, "body is not a JSON object of string fields"},
		{"application/json", `["a"]`, nil, 400, "body is not a JSON object of string fields"},
		{"text/csv", "a", nil, 415, "content type must be application/x-www-form-urlencoded or application/json"},
		{"", "", fields{}, 0, ""},
	} {
		r := httptest.NewRequest("POST", "/", strings.NewReader(tt.body))
		if tt.contentType != "" {
			r.Header.Set("Content-Type", tt.contentType)
		}
		got, err := readFields(httptest.NewRecorder(), r, 1<<20, "a", "b")
		if tt.status != 0 {
			herr, ok := errors.AsType[caddyhttp.HandlerError](err)
			if !ok || herr.StatusCode != tt.status || herr.Err.Error() != tt.reason {
				t.Errorf("%s %.40q: error %v, want %d %s", tt.contentType, tt.body, err, tt.status, tt.reason)
			}
			continue
		}
		if err != nil || !maps.Equal(got, tt.want) {
			t.Errorf("%s %q: %v %v, want %v", tt.contentType, tt.body, got, err, tt.want)
		}
	}
}

// TestNextResolved resolves dot segments and doubled slashes before the
// same-site check, so no Location begins with "//" or holds "..".
func TestNextResolved(t *testing.T) {
	for next, want := range map[string]string{
		"/..//evil.example/x":  "/evil.example/x",
		"/a/./b/../c?x=1&y=..": "/a/c?x=1&y=..",
		"/a//b/":               "/a/b/",
		"/a/%2e%2e/b":          "/b",
		"/..":                  "/",
		"/private/a.txt?x=1":   "/private/a.txt?x=1",
	} {
		got := safeNext(next)
		if got != want {
			t.Errorf("next %q: %q, want %q", next, got, want)
		}
		if strings.HasPrefix(got, "//") || strings.Contains(strings.SplitN(got, "?", 2)[0], "..") {
			t.Errorf("next %q resolves to an unsafe %q", next, got)
		}
	}
}
