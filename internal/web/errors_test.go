package web

import (
	"errors"
	"net/http/httptest"
	"strings"
	"testing"

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
