package miniapp

import (
	"net/http"

	"github.com/caddy-miniapp/miniapp/internal/gate"
	"github.com/caddy-miniapp/miniapp/internal/signin"
	"github.com/caddy-miniapp/miniapp/internal/web"
)

// wireOf is what the gate reads of the request: its cookies, whether it
// came over HTTPS, its host.
func wireOf(r *http.Request) gate.Wire {
	return gate.Wire{Cookies: r.Header["Cookie"], Secure: web.Secure(r), Host: web.Host(r)}
}

// clientOf is who the request comes from, for a sign-in.
func clientOf(r *http.Request, in web.Request) signin.Client {
	return signin.Client{Wire: gate.Wire{Cookies: r.Header["Cookie"], Secure: in.Secure, Host: in.Host}, IP: in.Client,
		UserAgent: r.UserAgent()}
}

// sessionOf returns the request's valid session, or nil (see gate.Open);
// each refused cookie is counted.
func (h *Handler) sessionOf(r *http.Request, wire gate.Wire) *gate.Session {
	s, refused := h.gate.Open(wire, r.URL.Path == authPath)
	if refused != "" {
		h.count(metrics.rejections, string(refused))
	}
	return s
}
