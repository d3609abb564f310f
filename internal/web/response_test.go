package web

import (
	"net/http/httptest"
	"testing"
)

// TestWrite sends the headers every answer carries, a page's security
// headers, and no body to HEAD.
func TestWrite(t *testing.T) {
	w := httptest.NewRecorder()
	w.Header().Set("Vary", "Cookie")
	Write(w, httptest.NewRequest("GET", "/", nil), 200, TextHTML, []byte("<p>hi</p>"))
	h := w.Header()
	if h.Get("Content-Length") != "9" || h.Get("X-Content-Type-Options") != "nosniff" || h.Values("Vary")[1] != "Accept" ||
		h.Get("Content-Security-Policy") != PageCSP || h.Get("X-Frame-Options") != "DENY" || w.Body.String() != "<p>hi</p>" {
		t.Errorf("page: %v %q", h, w.Body.String())
	}
	w = httptest.NewRecorder()
	Write(w, httptest.NewRequest("HEAD", "/", nil), 200, TextPlain, []byte("hello"))
	if w.Header().Get("Content-Length") != "5" || w.Body.Len() != 0 || w.Header().Get("Content-Security-Policy") != "" {
		t.Errorf("HEAD of text: %v %q", w.Header(), w.Body.String())
	}
}

// TestRedirect sends 303 with the location.
func TestRedirect(t *testing.T) {
	w := httptest.NewRecorder()
	Redirect(w, httptest.NewRequest("POST", "/login", nil), "/profile")
	if w.Code != 303 || w.Header().Get("Location") != "/profile" {
		t.Errorf("%d %v", w.Code, w.Header())
	}
}

// TestWriteBuilt sends what build appends, from a kept buffer.
func TestWriteBuilt(t *testing.T) {
	for range 2 {
		w := httptest.NewRecorder()
		WriteBuilt(w, httptest.NewRequest("GET", "/", nil), 200, AppJSON, func(b []byte) []byte { return append(b, `{"a":1}`...) })
		if w.Body.String() != `{"a":1}` || w.Header().Get("Content-Type") != AppJSON {
			t.Errorf("%v %q", w.Header(), w.Body.String())
		}
	}
}
