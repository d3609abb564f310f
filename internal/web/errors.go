package web

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"unicode"
	"unicode/utf8"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
)

// Reject is the error a route returns for a request it refuses: a
// caddyhttp.HandlerError with the status and a one-line reason that
// never repeats the input.
func Reject(status int, reason string) error {
	return caddyhttp.Error(status, errors.New(reason))
}

// Site writes a site's answers that need more than the request: pages
// under its Content-Security-Policy, and errors, logged when internal.
type Site struct {
	// Logger logs internal errors.
	Logger *zap.Logger
	// CSP is the pages' Content-Security-Policy when it is not PageCSP
	// (with cookie_domain, forms may go on to the domain's sites).
	CSP string
}

// Fail answers a request the module refuses. Where a handle_errors route
// of the server matches the request, the HandlerError goes to it as it
// is, so it sees the status and the reason; otherwise the client gets the
// one-line reason in format f. Any other error is an internal one.
func (s Site) Fail(w http.ResponseWriter, r *http.Request, f Format, err error) error {
	herr, ok := errors.AsType[caddyhttp.HandlerError](err)
	if !ok || herr.Err == nil {
		return s.Internal(w, r, err)
	}
	if HasErrorRoutes(r) {
		return herr
	}
	return s.Refuse(w, r, f, err)
}

// Refuse answers a request the module refuses itself, in format f, never
// through handle_errors: Caddy's error log records the request's URI,
// which must not hold what a provider's callback carries. Any other
// error is an internal one, answered without its cause.
func (s Site) Refuse(w http.ResponseWriter, r *http.Request, f Format, err error) error {
	herr, ok := errors.AsType[caddyhttp.HandlerError](err)
	if !ok || herr.Err == nil {
		s.Logger.Error("internal error", zap.String("path", r.URL.Path), zap.Error(err))
		Write(w, r, http.StatusInternalServerError, TextPlain, []byte("internal server error\n"))
		return nil
	}
	reason := herr.Err.Error()
	switch f {
	case JSON:
		return s.JSON(w, r, herr.StatusCode, map[string]string{"error": reason})
	case HTML:
		title := Describe(herr.StatusCode)
		return s.Render(w, r, herr.StatusCode, "error.html", PageData{Title: title, Status: title, Error: reason})
	}
	Write(w, r, herr.StatusCode, TextPlain, []byte(reason+"\n"))
	return nil
}

// Internal logs an unexpected failure with its cause and answers 500
// without it.
func (s Site) Internal(w http.ResponseWriter, r *http.Request, err error) error {
	s.Logger.Error("internal error", zap.String("path", r.URL.Path), zap.Error(err))
	if HasErrorRoutes(r) {
		return caddyhttp.Error(http.StatusInternalServerError, errors.New("internal server error"))
	}
	Write(w, r, http.StatusInternalServerError, TextPlain, []byte("internal server error\n"))
	return nil
}

// JSON sends v as a JSON answer.
func (s Site) JSON(w http.ResponseWriter, r *http.Request, status int, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return s.Internal(w, r, err)
	}
	Write(w, r, status, AppJSON, body)
	return nil
}

// Render sends a page from the embedded templates, under the site's
// Content-Security-Policy unless the route set its own; the page's
// error message starts with a capital.
func (s Site) Render(w http.ResponseWriter, r *http.Request, status int, name string, data PageData) error {
	data.Error = capital(data.Error)
	var buf bytes.Buffer
	if err := pages.ExecuteTemplate(&buf, name, data); err != nil {
		return s.Internal(w, r, err)
	}
	if s.CSP != "" && w.Header().Get("Content-Security-Policy") == "" {
		w.Header().Set("Content-Security-Policy", s.CSP)
	}
	Write(w, r, status, TextHTML, buf.Bytes())
	return nil
}

// capital is a one-line reason as a page shows it: a sentence, with a
// capital (the reason itself stays as it is for text and JSON).
func capital(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	if n == 0 || !unicode.IsLower(r) {
		return s
	}
	return string(unicode.ToUpper(r)) + s[n:]
}

// Policy is the Content-Security-Policy of the site's pages.
func (s Site) Policy() string {
	if s.CSP != "" {
		return s.CSP
	}
	return PageCSP
}

// HasErrorRoutes reports whether a handle_errors route of the server
// matches the request and will answer an error the handler returns;
// without one Caddy would send the status with an empty body. The
// server's error routes may belong to other sites, hence the match.
func HasErrorRoutes(r *http.Request) bool {
	srv, ok := r.Context().Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server)
	if !ok || srv == nil || srv.Errors == nil {
		return false
	}
	for _, route := range srv.Errors.Routes {
		if match, err := route.MatcherSets.AnyMatchWithError(r); match && err == nil {
			return true
		}
	}
	return false
}

// Describe is a short human description of a status for error pages.
func Describe(status int) string {
	return fmt.Sprintf("%d %s", status, http.StatusText(status))
}
