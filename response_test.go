package miniapp

import (
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
)

// checkCommonHeaders asserts what every response of the module carries.
func checkCommonHeaders(t *testing.T, w *httptest.ResponseRecorder) {
	t.Helper()
	if w.Header().Get("Content-Type") == "" {
		t.Error("no Content-Type")
	}
	if got, want := w.Header().Get("Content-Length"), strconv.Itoa(w.Body.Len()); got != want {
		t.Errorf("Content-Length %q, body is %s bytes", got, want)
	}
	if w.Header().Get("X-Content-Type-Options") != "nosniff" {
		t.Error("no X-Content-Type-Options: nosniff")
	}
	if !strings.Contains(strings.Join(w.Header().Values("Vary"), ","), "Accept") {
		t.Error("no Vary: Accept")
	}
	if w.Code == 401 && !strings.HasPrefix(w.Header().Get("WWW-Authenticate"), `Cookie realm="miniapp", form-action="/login"`) {
		t.Errorf("401 with WWW-Authenticate %q", w.Header().Get("WWW-Authenticate"))
	}
}

func TestHead(t *testing.T) {
	a := newApp(t, "", nil)
	for _, target := range []string{"/hello?name=Ada", "/login", "/profile"} {
		w := a.do(request{method: "HEAD", target: target, accept: "text/html"})
		get := a.do(request{method: "GET", target: target, accept: "text/html"})
		if w.Code != get.Code || w.Body.Len() != 0 {
			t.Errorf("HEAD %s: status %d (GET %d), body %d bytes", target, w.Code, get.Code, w.Body.Len())
		}
		if w.Header().Get("Content-Length") != get.Header().Get("Content-Length") {
			t.Errorf("HEAD %s: Content-Length %q, GET has %q", target, w.Header().Get("Content-Length"), get.Header().Get("Content-Length"))
		}
	}
}
