package miniapp

import (
	"net/http"

	"github.com/caddy-miniapp/miniapp/internal/gate"
	"github.com/caddy-miniapp/miniapp/internal/routes"
)

// sessionOf returns the request's valid session, or nil (see gate.Open);
// each refused cookie is counted.
func (h *Handler) sessionOf(r *http.Request, wire gate.Wire) *gate.Session {
	s, refused := h.app.Gate.Open(wire, r.URL.Path == routes.AuthPath)
	if refused != "" {
		h.count(metrics.rejections, string(refused))
	}
	return s
}
