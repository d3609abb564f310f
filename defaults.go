package miniapp

import (
	"net/http"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/admin"
	"github.com/caddyserver/caddy/v2"
)

// Defaults of the config fields; each field's doc comment repeats its own.
const (
	defaultMaxBodySize     = 64 << 10
	defaultSessionLifetime = 12 * time.Hour
	defaultCookieName      = "miniapp_session"
	defaultRevocationSync  = time.Second
	defaultIdleTimeout     = time.Hour
	defaultLoginFailures   = 5
	defaultLoginWindow     = time.Minute
	defaultRealm           = admin.DefaultRealm
)

// setDefaults fills in the config fields left empty.
func (h *Handler) setDefaults() {
	if h.SessionLifetime == 0 {
		h.SessionLifetime = caddy.Duration(defaultSessionLifetime)
	}
	if h.CookieName == "" {
		h.CookieName = defaultCookieName
	}
	if h.IdleTimeout == 0 {
		h.IdleTimeout = caddy.Duration(defaultIdleTimeout)
	}
	if h.LoginLimit == nil {
		h.LoginLimit = new(LoginLimit)
	}
	if h.LoginLimit.Failures == 0 {
		h.LoginLimit.Failures = defaultLoginFailures
	}
	if h.LoginLimit.Window == 0 {
		h.LoginLimit.Window = caddy.Duration(defaultLoginWindow)
	}
	if h.RevocationSync == 0 {
		h.RevocationSync = caddy.Duration(defaultRevocationSync)
	}
	if h.MaxBodySize == 0 {
		h.MaxBodySize = defaultMaxBodySize
	}
	if h.Realm == "" {
		h.Realm = defaultRealm
	}
	if h.SecondFactor == "" {
		h.SecondFactor = factorOptional
	}
}

// validCookieName reports whether name is a valid cookie name.
func validCookieName(name string) bool {
	return (&http.Cookie{Name: name}).Valid() == nil
}
