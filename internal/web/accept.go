package web

import (
	"net/http"
	"strconv"
	"strings"
)

// Format is the kind of answer a client gets.
type Format int

// The formats of an answer.
const (
	Text Format = iota
	HTML
	JSON
)

// Request is what every route of the module reads of a request, once,
// before it reads its own fields: how to answer, and who asks from
// where.
type Request struct {
	// Format is the answer's format, negotiated from Accept.
	Format Format
	// HTML is whether the client takes HTML at all (Accept names
	// text/html with a quality above 0): a browser, for the auth
	// endpoint, which answers no page.
	HTML bool
	// Secure is whether the client reached the site over HTTPS (see
	// Secure).
	Secure bool
	// Host is the request's host without port, lowercase.
	Host string
	// Client is Caddy's client IP, which honours trusted_proxies.
	Client string
}

// Read reads the request once into a Request.
func Read(r *http.Request) Request {
	return ReadOn(r, Secure(r), Host(r))
}

// ReadOn is Read of a request whose Secure and Host are known already.
func ReadOn(r *http.Request, secure bool, host string) Request {
	f, html := negotiate(r)
	return Request{Format: f, HTML: html, Secure: secure, Host: host, Client: ClientIP(r)}
}

// negotiate reads the Accept header once: it picks JSON or HTML when
// Accept asks for it at least as much as for the other, JSON for a
// client that sent JSON and named neither, plain text otherwise; and
// says whether HTML is acceptable at all. Only Accept says so, never the
// User-Agent.
func negotiate(r *http.Request) (Format, bool) {
	qJSON, qHTML := 0.0, 0.0
	for _, accept := range r.Header.Values("Accept") {
		for accept != "" {
			var part string
			part, accept, _ = strings.Cut(accept, ",")
			mediaType, params, _ := strings.Cut(part, ";")
			q := quality(params)
			switch mediaType = strings.TrimSpace(mediaType); {
			case strings.EqualFold(mediaType, "application/json"):
				qJSON = max(qJSON, q)
			case strings.EqualFold(mediaType, "text/html"):
				qHTML = max(qHTML, q)
			}
		}
	}
	html := qHTML > 0
	switch {
	case qJSON > 0 && qJSON >= qHTML:
		return JSON, html
	case html:
		return HTML, html
	case IsJSON(r.Header.Get("Content-Type")):
		return JSON, html
	}
	return Text, html
}

// quality reads the q parameter of a media range; 1 when absent, 0 when
// it does not parse.
func quality(params string) float64 {
	for params != "" {
		var p string
		p, params, _ = strings.Cut(params, ";")
		k, v, _ := strings.Cut(p, "=")
		if strings.TrimSpace(k) == "q" {
			q, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil || q < 0 || q > 1 {
				return 0
			}
			return q
		}
	}
	return 1
}
