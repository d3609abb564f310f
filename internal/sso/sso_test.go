package sso

import (
	"strings"
	"testing"
)

// TestOriginal rebuilds the forwarded request's URL from each header
// style, and ignores headers that do not make one.
func TestOriginal(t *testing.T) {
	for _, tc := range []struct {
		check Check
		want  string
		host  string
		nginx bool
	}{
		{Check{ForwardedProto: "https", ForwardedHost: "app.example.test", ForwardedURI: "/a/b?c=d"}, "https://app.example.test/a/b?c=d", "app.example.test", false},
		{Check{ForwardedProto: "http", ForwardedHost: "app.example.test:8080", ForwardedURI: "/"}, "http://app.example.test:8080/", "app.example.test", false},
		{Check{OriginalURL: "https://app.example.test/x?y=1"}, "https://app.example.test/x?y=1", "app.example.test", true},
		{Check{OriginalURL: "javascript:alert(1)"}, "http://auth.example.test/", "", true},
		{Check{ForwardedProto: "gopher", ForwardedHost: "a.test/evil", ForwardedURI: "//evil.net/x"}, "http://auth.example.test/", "auth.example.test", false},
		{Check{ForwardedHost: "user@evil.net"}, "http://auth.example.test/", "auth.example.test", false},
		{Check{Secure: true}, "https://auth.example.test/", "auth.example.test", false},
		{Check{}, "http://auth.example.test/", "auth.example.test", false},
	} {
		tc.check.Host = "auth.example.test"
		u, nginx := tc.check.Original()
		if u.String() != tc.want || nginx != tc.nginx || tc.check.OriginalHost() != tc.host {
			t.Errorf("%+v: %s %v %q, want %s %v %q", tc.check, u, nginx, tc.check.OriginalHost(), tc.want, tc.nginx, tc.host)
		}
	}
}

// TestValidHost: letters, digits, dots, dashes, a port and IPv6
// brackets, nothing else, at most 255 bytes.
func TestValidHost(t *testing.T) {
	for host, want := range map[string]bool{"app.example.test": true, "app.example.test:8443": true, "[::1]:80": true, "": false,
		"a.test/evil": false, "user@evil.net": false, "a b": false, strings.Repeat("a", 256): false} {
		if got := ValidHost(host); got != want {
			t.Errorf("%q: %v", host, got)
		}
	}
}
