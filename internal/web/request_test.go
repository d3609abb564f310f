package web

import (
	"errors"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

const formType = "application/x-www-form-urlencoded"

// TestReadFields parses a form or JSON body once into the named fields,
// and refuses what does not parse with the one-line reason.
func TestReadFields(t *testing.T) {
	for _, tt := range []struct {
		contentType, body string
		want              Fields
		status            int
		reason            string
	}{
		{formType, "a=1&b=&b=2&c=3", Fields{"a": "1", "b": "2"}, 0, ""},
		{formType, "a=%41+b", Fields{"a": "A b"}, 0, ""},
		{formType, "a=%zz", nil, 400, reasonEscape},
		{formType, "a=1;b=2", nil, 400, reasonSemicolon},
		{formType, strings.Repeat("x=1&", maxParams), nil, 400, reasonManyParams},
		{"application/json", `{"a":"1","b":null,"c":5}`, Fields{"a": "1"}, 0, ""},
		{"application/json", `{"a":5}`, nil, 400, "body is not a JSON object of string fields"},
		{"application/json", `["a"]`, nil, 400, "body is not a JSON object of string fields"},
		{"text/csv", "a", nil, 415, "content type must be application/x-www-form-urlencoded or application/json"},
		{"", "", Fields{}, 0, ""},
	} {
		r := httptest.NewRequest("POST", "/", strings.NewReader(tt.body))
		if tt.contentType != "" {
			r.Header.Set("Content-Type", tt.contentType)
		}
		got, err := ReadFields(httptest.NewRecorder(), r, 1<<20, "a", "b")
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
		got := SafePath(next)
		if got != want {
			t.Errorf("next %q: %q, want %q", next, got, want)
		}
		if strings.HasPrefix(got, "//") || strings.Contains(strings.SplitN(got, "?", 2)[0], "..") {
			t.Errorf("next %q resolves to an unsafe %q", next, got)
		}
	}
}

// FuzzNext checks the redirect target validator: whatever it accepts is
// a path on this site when a browser resolves it.
func FuzzNext(f *testing.F) {
	for _, s := range []string{"/profile", "//evil", "/\\evil", "/%2F/evil", "https://x", "/a?b=//c", "/\t/x"} {
		f.Add(s)
	}
	base, _ := http.NewRequest("GET", "https://site.example/login", nil)
	f.Fuzz(func(t *testing.T, next string) {
		got := SafePath(next)
		if got == "" {
			return
		}
		u, err := base.URL.Parse(got)
		if err != nil || u.Host != "site.example" || u.Scheme != "https" {
			t.Fatalf("safeNext accepted %q, which resolves to %v", next, u)
		}
		if strings.ContainsAny(got, "\r\n\\") {
			t.Fatalf("safeNext accepted %q", next)
		}
	})
}

// TestLoopback: plain http is for localhost and loopback addresses
// only, never a name under localhost, which a resolver may send over
// the network.
func TestLoopback(t *testing.T) {
	for host, want := range map[string]bool{"localhost": true, "127.0.0.1": true, "::1": true, "127.8.9.10": true,
		"app.localhost": false, "localhost.example.test": false, "example.test": false, "10.0.0.1": false, "": false} {
		if got := Loopback(host); got != want {
			t.Errorf("Loopback(%q) = %v", host, got)
		}
	}
}
