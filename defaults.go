package miniapp

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/account"
	"github.com/caddy-miniapp/miniapp/internal/admin"
	"github.com/caddy-miniapp/miniapp/internal/gate"
	"github.com/caddy-miniapp/miniapp/internal/users"
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

// The second_factor policies.
const (
	factorOptional = "optional"
	factorRequired = "required"
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

// Validate checks the provisioned config.
func (h *Handler) Validate() error {
	if time.Duration(h.SessionLifetime) <= 0 {
		return fmt.Errorf("session_lifetime must be positive, got %v", time.Duration(h.SessionLifetime))
	}
	if time.Duration(h.IdleTimeout) <= 0 {
		return fmt.Errorf("idle_timeout must be positive, got %v", time.Duration(h.IdleTimeout))
	}
	if h.LoginLimit.Failures < 1 || time.Duration(h.LoginLimit.Window) <= 0 {
		return fmt.Errorf("login_limit must be a positive count and window, got %d %v", h.LoginLimit.Failures, time.Duration(h.LoginLimit.Window))
	}
	if time.Duration(h.RevocationSync) <= 0 {
		return fmt.Errorf("revocation_sync must be positive, got %v", time.Duration(h.RevocationSync))
	}
	if h.MaxBodySize < 0 {
		return fmt.Errorf("max_body_size must be positive, got %d", h.MaxBodySize)
	}
	if !admin.RealmName.MatchString(h.Realm) {
		return fmt.Errorf("realm %q must be 1 to 64 letters, digits, '.', '_' or '-'", h.Realm)
	}
	if h.SecondFactor != "" && h.SecondFactor != factorOptional && h.SecondFactor != factorRequired {
		return fmt.Errorf("second_factor must be optional or required, got %q", h.SecondFactor)
	}
	if h.PasswordHash != "" && h.PasswordHash != string(users.Argon2id) && h.PasswordHash != string(users.Bcrypt) {
		return fmt.Errorf("password_hash must be argon2id or bcrypt, got %q", h.PasswordHash)
	}
	if h.PasskeyRPID != "" && (gate.CheckDomain(strings.ToLower(h.PasskeyRPID)) != nil && h.PasskeyRPID != "localhost") {
		return fmt.Errorf("passkey_rp_id %q must be a domain name, not a public suffix or an IP address", h.PasskeyRPID)
	}
	if len(h.TOTPIssuer) > 64 || account.CheckText(h.TOTPIssuer) != nil || strings.Contains(h.TOTPIssuer, ":") {
		return fmt.Errorf("totp_issuer must be at most 64 characters of text without ':'")
	}
	if !validCookieName(h.CookieName) {
		return fmt.Errorf("cookie_name %q is not a valid cookie name", h.CookieName)
	}
	return nil
}
