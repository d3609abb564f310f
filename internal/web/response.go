package web

import (
	"net/http"
	"strconv"
	"sync"
)

// Content types of the module's responses.
const (
	TextPlain      = "text/plain; charset=utf-8"
	TextHTML       = "text/html; charset=utf-8"
	TextCSS        = "text/css; charset=utf-8"
	TextJavaScript = "text/javascript; charset=utf-8"
	ImageSVG       = "image/svg+xml"
	AppJSON        = "application/json"
)

// PageCSP allows the pages nothing but the site's own stylesheet, script
// (passkeys), images, requests and forms: no inline script or style.
const PageCSP = "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// Write sends a whole response with the headers every response of the
// module carries; a HEAD request gets the headers alone. The header
// values share one array, each slice capped so that a later Add copies.
func Write(w http.ResponseWriter, r *http.Request, status int, contentType string, body []byte) {
	h := w.Header()
	v := [...]string{contentType, strconv.Itoa(len(body)), "nosniff", "Accept", PageCSP, "same-origin", "DENY"}
	h["Content-Type"] = v[0:1:1]
	h["Content-Length"] = v[1:2:2]
	h["X-Content-Type-Options"] = v[2:3:3]
	// the format of every response follows the Accept header
	if len(h["Vary"]) == 0 {
		h["Vary"] = v[3:4:4]
	} else {
		h["Vary"] = append(h["Vary"], "Accept")
	}
	if contentType == TextHTML {
		// a page may have set its own (render, with cookie_domain)
		if len(h["Content-Security-Policy"]) == 0 {
			h["Content-Security-Policy"] = v[4:5:5]
		}
		h["Referrer-Policy"] = v[5:6:6]
		h["X-Frame-Options"] = v[6:7:7]
	}
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

// bodies are buffers for built response bodies, kept between requests:
// a body is written before its handler returns, and a writer keeps
// nothing of it.
var bodies = sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }}

// maxKeptBody is the largest buffer bodies keeps.
const maxKeptBody = 64 << 10

// WriteBuilt sends the body that build appends to an empty buffer.
func WriteBuilt(w http.ResponseWriter, r *http.Request, status int, contentType string, build func([]byte) []byte) {
	buf := bodies.Get().(*[]byte)
	body := build((*buf)[:0])
	Write(w, r, status, contentType, body)
	if cap(body) <= maxKeptBody {
		*buf = body
		bodies.Put(buf)
	}
}

// Redirect sends 303 See Other to a path of this site.
func Redirect(w http.ResponseWriter, r *http.Request, location string) {
	w.Header().Set("Location", location)
	Write(w, r, http.StatusSeeOther, TextPlain, []byte("See Other\n"))
}
