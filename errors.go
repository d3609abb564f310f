package miniapp

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
)

// reject is the error a route returns for a request it refuses: a
// caddyhttp.HandlerError with the status and a one-line reason that
// never repeats the input.
func reject(status int, reason string) error {
	return caddyhttp.Error(status, errors.New(reason))
}

// fail answers a request the module refuses. Where a handle_errors route
// of the server matches the request, the HandlerError goes to it as it
// is, so it sees the status and the reason; otherwise the client gets the
// one-line reason in the format negotiated for it. Any other error is an
// internal one.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, f format, err error) error {
	herr, ok := errors.AsType[caddyhttp.HandlerError](err)
	if !ok || herr.Err == nil {
		return h.internal(w, r, err)
	}
	if hasErrorRoutes(r) {
		return herr
	}
	reason := herr.Err.Error()
	switch f {
	case formatJSON:
		return h.writeJSON(w, r, herr.StatusCode, map[string]string{"error": reason})
	case formatHTML:
		title := describe(herr.StatusCode)
		return h.render(w, r, herr.StatusCode, "error.html", pageData{Title: title, Status: title, Error: reason})
	}
	write(w, r, herr.StatusCode, textPlain, []byte(reason+"\n"))
	return nil
}

// internal logs an unexpected failure with its cause and answers 500
// without it.
func (h *Handler) internal(w http.ResponseWriter, r *http.Request, err error) error {
	h.logger.Error("internal error", zap.String("path", r.URL.Path), zap.Error(err))
	if hasErrorRoutes(r) {
		return caddyhttp.Error(http.StatusInternalServerError, errors.New("internal server error"))
	}
	write(w, r, http.StatusInternalServerError, textPlain, []byte("internal server error\n"))
	return nil
}

// hasErrorRoutes reports whether a handle_errors route of the server
// matches the request and will answer an error the handler returns;
// without one Caddy would send the status with an empty body. The
// server's error routes may belong to other sites, hence the match.
func hasErrorRoutes(r *http.Request) bool {
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

// describe is a short human description of a status for error pages.
func describe(status int) string {
	return fmt.Sprintf("%d %s", status, http.StatusText(status))
}
