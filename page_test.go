package miniapp

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/caddy-miniapp/miniapp/internal/web"
)

// TestStylesheet serves the pages' static files (the stylesheet, the
// passkey script and the icon) under their content hash, cacheable for a
// year, through any protect pattern; another hash is not the module's
// route.
func TestStylesheet(t *testing.T) {
	a := newApp(t, "", func(h *Handler) { h.Protect = []string{"/*"} })
	for _, f := range []struct {
		path, pattern, contentType string
		body                       []byte
	}{
		{web.StylePath, `^/miniapp/style\.[0-9a-f]{16}\.css$`, web.TextCSS, web.Stylesheet},
		{web.ScriptPath, `^/miniapp/passkey\.[0-9a-f]{16}\.js$`, web.TextJavaScript, web.PasskeyScript},
		{web.FaviconPath, `^/miniapp/favicon\.[0-9a-f]{16}\.svg$`, web.ImageSVG, web.Favicon},
	} {
		sum := sha256.Sum256(f.body)
		if !regexp.MustCompile(f.pattern).MatchString(f.path) || !strings.Contains(f.path, "."+hex.EncodeToString(sum[:8])+".") {
			t.Fatalf("path %q is not named by its content", f.path)
		}
		w := a.do(request{target: f.path, accept: "*/*"})
		if w.Code != 200 || !bytes.Equal(w.Body.Bytes(), f.body) || w.Header().Get("Content-Type") != f.contentType ||
			w.Header().Get("Cache-Control") != "public, max-age=31536000, immutable" || w.Header().Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: %d %v", f.path, w.Code, w.Header())
		}
		if w := a.do(request{method: http.MethodHead, target: f.path}); w.Code != 200 || w.Body.Len() != 0 {
			t.Errorf("HEAD %s: %d, %d bytes", f.path, w.Code, w.Body.Len())
		}
		if w := a.do(request{method: http.MethodPost, target: f.path}); w.Code != 405 || w.Header().Get("Allow") != "GET, HEAD" {
			t.Errorf("POST %s: %d Allow %q", f.path, w.Code, w.Header().Get("Allow"))
		}
	}
	if w := a.do(request{target: "/miniapp/style.0000000000000000.css"}); w.Code == 200 {
		t.Errorf("a stylesheet of another content is served by the module")
	}
}

// TestPageHeaders checks the security headers of every HTML page.
func TestPageHeaders(t *testing.T) {
	a := newApp(t, "", nil)
	c := a.login("ada", adaPassword, true)
	for name, req := range map[string]request{
		"login":   {target: "/login", accept: "text/html", https: true},
		"profile": {target: "/profile", accept: "text/html", cookie: c, https: true},
		"error":   {target: "/hello?name=%zz", accept: "text/html", https: true},
		"failure": {method: "POST", target: "/login", accept: "text/html", contentType: form, body: "username=ada&password=x", https: true},
	} {
		w := a.do(req)
		h := w.Header()
		csp := h.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'none'", "frame-ancestors 'none'", "form-action 'self'", "base-uri 'none'", "style-src 'self'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("%s: CSP %q lacks %s", name, csp, want)
			}
		}
		if !strings.Contains(csp, "script-src 'self';") || strings.Contains(csp, "unsafe") {
			t.Errorf("%s: CSP %q allows scripts of other origins or unsafe sources", name, csp)
		}
		if h.Get("Referrer-Policy") != "same-origin" || h.Get("X-Frame-Options") != "DENY" || h.Get("Content-Type") != web.TextHTML {
			t.Errorf("%s: Referrer-Policy %q X-Frame-Options %q Content-Type %q", name, h.Get("Referrer-Policy"), h.Get("X-Frame-Options"), h.Get("Content-Type"))
		}
		body := w.Body.String()
		// the one script is the passkey script's file: no inline script
		own := `<script src="` + web.ScriptPath + `" defer></script>`
		if strings.Count(body, "<script") != strings.Count(body, own) || strings.Contains(body, "<style") || !strings.Contains(body, "<title>") {
			t.Errorf("%s: page has an inline script, an inline style or no title", name)
		}
		if !strings.Contains(body, `<link rel="stylesheet" href="`+web.StylePath+`">`) || !strings.Contains(body, `<link rel="icon" href="`+web.FaviconPath+`" type="image/svg+xml">`) ||
			!strings.Contains(body, `<meta name="description" content="`) {
			t.Errorf("%s: page does not link %s and its icon, or has no description", name, web.StylePath)
		}
		if name == "profile" && h.Get("Cache-Control") != "no-store" {
			t.Errorf("profile page without no-store")
		}
	}
	page := a.do(request{target: "/login", accept: "text/html"}).Body.String()
	for _, want := range []string{`<label for="username">`, `<label for="password">`, `autocomplete="username webauthn"`, `autocomplete="current-password"`, `id="passkey-signin"`} {
		if !strings.Contains(page, want) {
			t.Errorf("login form lacks %s", want)
		}
	}
}
