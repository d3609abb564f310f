package miniapp

import (
	"encoding/json"
	"net/http"
	"strconv"
	"sync"
)

// Content types of the module's responses.
const (
	textPlain      = "text/plain; charset=utf-8"
	textHTML       = "text/html; charset=utf-8"
	textCSS        = "text/css; charset=utf-8"
	textJavaScript = "text/javascript; charset=utf-8"
	imageSVG       = "image/svg+xml"
	appJSON        = "application/json"
)

// pageCSP allows the pages nothing but the site's own stylesheet, script
// (passkeys), images, requests and forms: no inline script or style.
const pageCSP = "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// write sends a whole response with the headers every response of the
// module carries; a HEAD request gets the headers alone. The header
// values share one array, each slice capped so that a later Add copies.
func write(w http.ResponseWriter, r *http.Request, status int, contentType string, body []byte) {
	h := w.Header()
	v := [...]string{contentType, strconv.Itoa(len(body)), "nosniff", "Accept", pageCSP, "same-origin", "DENY"}
	h["Content-Type"] = v[0:1:1]
	h["Content-Length"] = v[1:2:2]
	h["X-Content-Type-Options"] = v[2:3:3]
	// the format of every response follows the Accept header
	if len(h["Vary"]) == 0 {
		h["Vary"] = v[3:4:4]
	} else {
		h["Vary"] = append(h["Vary"], "Accept")
	}
	if contentType == textHTML {
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

// writeBuilt sends the body that build appends to an empty buffer.
func writeBuilt(w http.ResponseWriter, r *http.Request, status int, contentType string, build func([]byte) []byte) {
	buf := bodies.Get().(*[]byte)
	body := build((*buf)[:0])
	write(w, r, status, contentType, body)
	if cap(body) <= maxKeptBody {
		*buf = body
		bodies.Put(buf)
	}
}

// writeJSON sends v as a JSON response.
func (h *Handler) writeJSON(w http.ResponseWriter, r *http.Request, status int, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return h.internal(w, r, err)
	}
	write(w, r, status, appJSON, body)
	return nil
}

// redirect sends 303 See Other to a path of this site.
func redirect(w http.ResponseWriter, r *http.Request, location string) {
	w.Header().Set("Location", location)
	write(w, r, http.StatusSeeOther, textPlain, []byte("See Other\n"))
}
