// Package miniapp is a Caddy HTTP handler that serves a small web app:
// a greeting at /hello and a cookie-session login gate at /login,
// /profile and /logout, in front of whatever the site serves next.
package miniapp

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/caddyauth"
	"github.com/caddyserver/certmagic"
	"github.com/dustin/go-humanize"
	"go.uber.org/zap"
)

func init() {
	caddy.RegisterModule(Handler{})
	httpcaddyfile.RegisterHandlerDirective("miniapp", parseCaddyfile)
	httpcaddyfile.RegisterDirectiveOrder("miniapp", httpcaddyfile.After, "encode")
}

// Defaults of the config fields; each field's doc comment repeats its own.
const (
	defaultMaxBodySize     = 64 << 10
	defaultSessionLifetime = 12 * time.Hour
	defaultCookieName      = "miniapp_session"
	defaultRevocationSync  = 10 * time.Second
	defaultIdleTimeout     = time.Hour
	defaultLoginFailures   = 5
	defaultLoginWindow     = time.Minute
)

// Handler serves the miniapp routes (/hello, /login, /profile, /logout)
// and passes every other request to the next handler.
type Handler struct {
	// The accounts that may sign in, each a username and a password hash
	// in Modular Crypt Format as printed by `caddy hash-password`
	// (bcrypt `$2a$...` or argon2id `$argon2id$...`; both kinds may be
	// mixed). `{env.*}` and `{file.*}` placeholders are replaced at load
	// time. At least one account is required.
	Accounts []caddyauth.Account `json:"accounts,omitempty"`

	// Keys that encrypt and authenticate the session cookie, each the
	// standard or URL-safe base64 encoding of at least 32 random bytes.
	// The first key seals new cookies; all keys open them, so a new key
	// put first rotates keys without signing anyone out. Placeholders such
	// as `{env.MINIAPP_KEY}` are replaced at load time. When empty, a key is
	// generated on first start and kept in Caddy's storage, so restarts,
	// reloads and instances that share the storage share sessions.
	SecretKeys []string `json:"secret_keys,omitempty"`

	// How long a session lasts after login, whatever its use (absolute
	// expiry). Default: 12h.
	SessionLifetime caddy.Duration `json:"session_lifetime,omitempty"`

	// The name of the session cookie. Over HTTPS the cookie is named with
	// the `__Host-` prefix in front of it, which browsers only accept
	// with Secure, Path=/ and no Domain. Default: miniapp_session.
	CookieName string `json:"cookie_name,omitempty"`

	// The largest request body, in bytes, that a POST route of the
	// module reads; a larger one is answered with 413. Default: 65536
	// (64KiB).
	MaxBodySize int64 `json:"max_body_size,omitempty"`

	// How long a session may go unused before it ends. The time of last
	// use travels in the cookie, which is sent again with a new time once
	// less than half of this window is left (never past the session's
	// absolute expiry). Default: 1h.
	IdleTimeout caddy.Duration `json:"idle_timeout,omitempty"`

	// Failed logins allowed per client IP (Caddy's client IP, which honours
	// trusted_proxies; IPv6 clients are counted by /64) within a window.
	// Once reached, every login attempt from that client, a right
	// password included, is answered 429 with Retry-After until the window
	// that began with its first failure has passed. Default: 5 in 1m.
	LoginLimit *LoginLimit `json:"login_limit,omitempty"`

	// Path patterns, with the meaning of Caddy's path matcher, that need a
	// session. Without one, a browser is sent to the login page (and back
	// afterwards) and other clients get 401; with one, the request goes on
	// to the next handler. The module's own routes are not affected.
	Protect []string `json:"protect,omitempty"`

	// How often the list of revoked sessions is reread from Caddy's
	// storage. A logout on one instance is in force on every other
	// instance that shares the storage within this interval; until then
	// the old cookie may still be accepted there. Default: 10s.
	RevocationSync caddy.Duration `json:"revocation_sync,omitempty"`

	users      map[string]*User
	fakeUser   *User
	hostCookie string
	keys       *Keyring
	store      *Revocations
	throttle   *Throttle
	protected  caddyhttp.MatchPath
	csrf       *http.CrossOriginProtection
	logger     *zap.Logger
}

// LoginLimit is how many failed logins a client may make in a window.
type LoginLimit struct {
	// Failed attempts allowed in the window. Default: 5.
	Failures int `json:"failures,omitempty"`
	// The window, counted from the client's first failure. Default: 1m.
	Window caddy.Duration `json:"window,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.miniapp",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision fills in defaults, loads the accounts and the keys, and
// attaches the revocation list kept in Caddy's storage.
func (h *Handler) Provision(ctx caddy.Context) error {
	return h.provision(ctx, ctx.Storage(), ctx.Logger())
}

// provision is Provision with the storage and logger given, as tests
// give their own.
func (h *Handler) provision(ctx caddy.Context, storage certmagic.Storage, logger *zap.Logger) error {
	h.logger = logger
	if h.SessionLifetime == 0 {
		h.SessionLifetime = caddy.Duration(defaultSessionLifetime)
	}
	if h.CookieName == "" {
		h.CookieName = defaultCookieName
	}
	h.hostCookie = hostPrefix + h.CookieName
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
	h.csrf = http.NewCrossOriginProtection()

	repl := caddy.NewReplacer()
	users, fake, mixed, err := loadUsers(h.Accounts, repl)
	if err != nil {
		return err
	}
	if mixed {
		h.logger.Warn("users' password hashes differ in algorithm or cost; an unknown name takes as long as a wrong password only for the users whose hashes are like most users' (hash them all alike with caddy hash-password)")
	}
	h.users, h.fakeUser = users, fake

	if len(h.SecretKeys) > 0 {
		h.keys, err = parseKeyring(h.SecretKeys, repl)
	} else {
		h.keys, err = loadOrCreateKeyring(ctx, storage, h.logger)
	}
	if err != nil {
		return fmt.Errorf("loading key set: %v", err)
	}

	h.protected = caddyhttp.MatchPath(h.Protect)
	if err := h.protected.Provision(ctx); err != nil {
		return fmt.Errorf("protect: %v", err)
	}
	if err := metrics.register(ctx.GetMetricsRegistry()); err != nil {
		return fmt.Errorf("registering metrics: %v", err)
	}
	h.throttle, err = openThrottle(h.LoginLimit.Failures, time.Duration(h.LoginLimit.Window))
	if err != nil {
		return err
	}
	h.store, err = openRevocations(ctx, storage, time.Duration(h.RevocationSync), h.logger)
	if err != nil {
		return fmt.Errorf("loading revocations: %v", err)
	}
	return nil
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
	if !validCookieName(h.CookieName) {
		return fmt.Errorf("cookie_name %q is not a valid cookie name", h.CookieName)
	}
	return nil
}

// Cleanup releases the shared revocation list; it copes with a handler
// whose Provision failed half way.
func (h *Handler) Cleanup() error {
	var errs []error
	if h.throttle != nil {
		errs = append(errs, h.throttle.release())
	}
	if h.store != nil {
		errs = append(errs, h.store.release())
	}
	return errors.Join(errs...)
}

// validCookieName reports whether name is a valid cookie name.
func validCookieName(name string) bool {
	return (&http.Cookie{Name: name}).Valid() == nil
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	miniapp {
//	    user <name> <hash>
//	    secret_key <base64 key>
//	    session_lifetime <duration>
//	    cookie_name <name>
//	    max_body_size <size>
//	    idle_timeout <duration>
//	    login_limit <failures> <window>
//	    protect <path patterns...>
//	    revocation_sync <duration>
//	}
//
// `user`, `secret_key` and `protect` may be repeated; every other
// subdirective may appear once.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	seen := map[string]bool{}
	for d.NextBlock(0) {
		sub := d.Val()
		if sub != "user" && sub != "secret_key" && sub != "protect" {
			if seen[sub] {
				return d.Errf("duplicate subdirective %s", sub)
			}
			seen[sub] = true
		}
		switch sub {
		case "user":
			var name, hash string
			if !d.Args(&name, &hash) || d.NextArg() {
				return d.ArgErr()
			}
			h.Accounts = append(h.Accounts, caddyauth.Account{Username: name, Password: hash})
		case "secret_key":
			var key string
			if !d.Args(&key) || d.NextArg() {
				return d.ArgErr()
			}
			h.SecretKeys = append(h.SecretKeys, key)
		case "session_lifetime":
			dur, err := durationArg(d)
			if err != nil {
				return err
			}
			h.SessionLifetime = dur
		case "idle_timeout":
			dur, err := durationArg(d)
			if err != nil {
				return err
			}
			h.IdleTimeout = dur
		case "login_limit":
			var count, window string
			if !d.Args(&count, &window) || d.NextArg() {
				return d.ArgErr()
			}
			n, err := strconv.Atoi(count)
			if err != nil || n < 1 {
				return d.Errf("login_limit: failures must be a positive number, got %q", count)
			}
			dur, err := caddy.ParseDuration(window)
			if err != nil || dur <= 0 {
				return d.Errf("login_limit: window must be a positive duration, got %q", window)
			}
			h.LoginLimit = &LoginLimit{Failures: n, Window: caddy.Duration(dur)}
		case "protect":
			if !d.NextArg() {
				return d.ArgErr()
			}
			h.Protect = append(h.Protect, d.Val())
			h.Protect = append(h.Protect, d.RemainingArgs()...)
		case "revocation_sync":
			dur, err := durationArg(d)
			if err != nil {
				return err
			}
			h.RevocationSync = dur
		case "cookie_name":
			if !d.Args(&h.CookieName) || d.NextArg() {
				return d.ArgErr()
			}
		case "max_body_size":
			var val string
			if !d.Args(&val) || d.NextArg() {
				return d.ArgErr()
			}
			size, err := humanize.ParseBytes(val)
			if err != nil || size == 0 || size > 1<<40 {
				return d.Errf("max_body_size: invalid size %q", val)
			}
			h.MaxBodySize = int64(size)
		default:
			return d.Errf("unknown subdirective %q", sub)
		}
	}
	return nil
}

// durationArg reads the one duration argument of the current subdirective.
func durationArg(d *caddyfile.Dispenser) (caddy.Duration, error) {
	sub := d.Val()
	var val string
	if !d.Args(&val) || d.NextArg() {
		return 0, d.ArgErr()
	}
	dur, err := caddy.ParseDuration(val)
	if err != nil {
		return 0, d.Errf("%s: %v", sub, err)
	}
	if dur <= 0 {
		return 0, d.Errf("%s must be positive, got %s", sub, val)
	}
	return caddy.Duration(dur), nil
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	m := new(Handler)
	err := m.UnmarshalCaddyfile(h.Dispenser)
	return m, err
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
	_ caddyfile.Unmarshaler       = (*Handler)(nil)
)
