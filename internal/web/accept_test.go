package web

import (
	"net/http/httptest"
	"testing"
)

// TestNegotiate picks the response format from Accept, then from the
// request's own Content-Type.
func TestNegotiate(t *testing.T) {
	for _, tt := range []struct {
		accept, contentType string
		want                Format
	}{
		{"", "", Text},
		{"*/*", "", Text},
		{"text/html", "", HTML},
		{"application/json", "", JSON},
		{"text/html, application/json", "", JSON},
		{"text/html, application/json;q=0.5", "", HTML},
		{"application/json;q=0, text/html;q=0.1", "", HTML},
		{"application/json;q=bad", "", Text},
		{"TEXT/HTML", "", HTML},
		{"", "application/json; charset=utf-8", JSON},
		{"text/html", "application/json", HTML},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		if tt.accept != "" {
			r.Header.Set("Accept", tt.accept)
		}
		if tt.contentType != "" {
			r.Header.Set("Content-Type", tt.contentType)
		}
		if got := Read(r).Format; got != tt.want {
			t.Errorf("Accept %q Content-Type %q: %v, want %v", tt.accept, tt.contentType, got, tt.want)
		}
	}
}

// TestAcceptsHTML reads from the one parse of Accept whether a client
// takes HTML at all, whatever format it prefers.
func TestAcceptsHTML(t *testing.T) {
	for accept, want := range map[string]bool{
		"":                                   false,
		"*/*":                                false,
		"text/html":                          true,
		"application/json, text/html;q=0.1":  true,
		"text/html;q=0":                      false,
		"text/html;q=x":                      false,
		"TEXT/HTML ; q=1":                    true,
		"application/json":                   false,
		"text/html;level=1;q=0.5, */*;q=0.1": true,
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Accept", accept)
		if got := Read(r).HTML; got != want {
			t.Errorf("Accept %q: HTML %v, want %v", accept, got, want)
		}
	}
}

// TestRead reads the client's facts once: HTTPS only from TLS or a
// trusted proxy, the host without port in lower case.
func TestRead(t *testing.T) {
	r := httptest.NewRequest("GET", "http://Site.Example:8443/x", nil)
	r.Header.Set("X-Forwarded-Proto", "https")
	in := Read(r)
	if in.Secure || in.Host != "site.example" {
		t.Errorf("untrusted X-Forwarded-Proto: %+v", in)
	}
	r = httptest.NewRequest("GET", "https://[::1]:8443/x", nil)
	if in := Read(r); !in.Secure || in.Host != "::1" {
		t.Errorf("TLS: %+v", in)
	}
}

// TestReadOn: what the caller knew of the request is taken as it is, and
// the rest is read.
func TestReadOn(t *testing.T) {
	r := httptest.NewRequest("GET", "http://site.example/x", nil)
	r.Header.Set("Accept", "application/json")
	in := ReadOn(r, true, "known.example")
	if !in.Secure || in.Host != "known.example" || in.Format != JSON {
		t.Errorf("%+v", in)
	}
}
