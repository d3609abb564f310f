// Package miniapp is a Caddy HTTP handler that serves a small web app:
// a greeting at /hello and a cookie-session login gate at /login,
// /profile and /logout, in front of whatever the site serves next.
//
// This package is the Caddy module and only its glue: the config,
// ServeHTTP with its route table, the admin API and command shells, the
// metrics. Each route's reading and writing, and the wiring of the
// services, are in internal/routes; each flow lives in the package of
// its concern under internal/ (web, gate, signin, totp, passkey, sso,
// oidc, idp, users, records, admin, session, account, guard), the shared
// state in store with one package per backend (store/storage,
// store/redis). A route reads its request once into a value, asks those
// packages and writes the outcome once.
package miniapp

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/account"
	"github.com/caddy-miniapp/miniapp/internal/guard"
	"github.com/caddy-miniapp/miniapp/internal/idp"
	"github.com/caddy-miniapp/miniapp/internal/oidc"
	"github.com/caddy-miniapp/miniapp/internal/routes"
	"github.com/caddy-miniapp/miniapp/internal/session"
	"github.com/caddy-miniapp/miniapp/internal/users"
	"github.com/caddy-miniapp/miniapp/store"
	"github.com/caddy-miniapp/miniapp/store/storage"

	// the redis backend registers its guest module; a build with this
	// module has both stores
	_ "github.com/caddy-miniapp/miniapp/store/redis"
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Handler is the miniapp: a login gate with cookie sessions, served from
// inside Caddy.
//
// Routes, matched on the exact path: `GET /hello?name=…` greets; `GET
// /login` shows the sign-in form and `POST /login` checks a password and
// starts a session (303 to `next` or /profile); `GET /profile` shows the
// signed-in user (HTML or JSON); `POST /logout` ends the session (with
// `all=1`, every session of the user); `GET /miniapp/style.<hash>.css` is
// the pages' stylesheet. Every other request goes to the next handler,
// unless it matches `protect` and carries no session.
//
// Placeholders: `{http.miniapp.user}` is the signed-in user, empty for
// anonymous requests; `{http.auth.user.id}` is set to the same name only
// when someone is signed in, so Caddy's access log shows it as user_id.
//
// Errors (400, 401, 403, 405, 413, 415, 429) are `caddyhttp.HandlerError`
// values: where a `handle_errors` route of the server matches the request
// they go to it with `{err.status_code}` and `{err.message}` (a one-line
// reason); otherwise the module answers with that reason itself, as text,
// JSON or an HTML page, following the request's Accept header.
type Handler struct {
	// The accounts that may sign in. At least one account is required.
	Accounts []Account `json:"accounts,omitempty"`

	// The domain the session cookie is sent to, with every subdomain:
	// a session made on one site of the domain (the login site) opens
	// every other, in this Caddy or another server through `forward_auth`
	// and `/miniapp/auth`. Any host under the domain receives the cookie,
	// so only use a domain whose subdomains you all control. A public
	// suffix (`com`, `co.uk`, `github.io`), an IP address or `localhost`
	// is refused. Requires `login_url`. Default: none, a host-only
	// `__Host-` cookie.
	CookieDomain string `json:"cookie_domain,omitempty"`

	// Where browsers without a session are sent to sign in, with
	// `next`: an absolute `http` or `https` URL, or a path of this site.
	// Required with `cookie_domain`, and then on a host of that domain;
	// its scheme fixes the cookie's name for the whole domain (`https`:
	// `__Secure-<cookie_name>`, Secure). Default: this site's `/login`.
	LoginURL string `json:"login_url,omitempty"`

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

	// How often a store that is polled (`storage`) is read for changes:
	// a logout on one instance is in force on every other instance that
	// shares the store within this interval; until then the old cookie
	// may still be accepted there. A sync reads only what changed since
	// the last one. The `redis` store pushes changes and ignores it.
	// Default: 1s.
	RevocationSync caddy.Duration `json:"revocation_sync,omitempty"`

	// Where the realm's shared state lives (the generated key set, the
	// realm's generation, revocations, sign-out counters, the session
	// index and known devices), as a module of the namespace
	// http.handlers.miniapp.stores named by `backend`: `storage` (the
	// default) is Caddy's configured storage; `redis` is a Redis or
	// Valkey server, whose changes reach every instance at once.
	StoreRaw json.RawMessage `json:"store,omitempty" caddy:"namespace=http.handlers.miniapp.stores inline_key=backend"`

	// The realm namespaces everything the handler keeps: the key set it
	// generates, revocations, sign-out counters and login throttle
	// counts. Two handlers share sessions only when they have the same
	// realm and the same account (the same user name and password hash),
	// as the same config on several instances does; give two sites that
	// must stay apart even with identical accounts different realms.
	// Letters, digits, '.', '_' and '-', at most 64. Default: miniapp.
	Realm string `json:"realm,omitempty"`

	// Whether users need a second factor: `optional` (the default) lets
	// each user set up one-time codes (TOTP) on /profile/totp, and asks
	// for a code at sign-in once they have; `required` gives a user
	// without a factor who signs in with a password a session that can
	// only set one up (the profile and protected paths send browsers to
	// /profile/totp and refuse other clients with 403), and asks every
	// session for two factors.
	SecondFactor string `json:"second_factor,omitempty"`

	// The issuer authenticator apps show beside the user name for this
	// site's codes. Default: the site's host.
	TOTPIssuer string `json:"totp_issuer,omitempty"`

	// How long a browser trusted for the second factor at its code step
	// ("trust this browser", a cookie of its own) skips the code at a
	// password sign-in: such a session counts as two factors for access,
	// never for changing sign-in methods. Default: 0, never.
	RememberSecondFactor caddy.Duration `json:"remember_second_factor,omitempty"`

	// How the passwords of accounts managed in the store (`caddy miniapp
	// user`) are hashed: `argon2id` (the default, as Caddy's own argon2id
	// hasher) or `bcrypt`, which reads only 72 bytes of a password, so
	// longer ones are refused.
	PasswordHash string `json:"password_hash,omitempty"`

	// Whether users may register passkeys on their profile and sign in
	// with them, without a password or a user name. Default: true.
	Passkeys *bool `json:"passkeys,omitempty"`

	// The WebAuthn relying party ID of passkeys: a domain that every
	// host serving the sign-in is, or is under. Passkeys work on https
	// hosts equal to or under it (and on http://localhost), and are
	// offered to no other host. Default: cookie_domain when set, else the
	// request's host.
	PasskeyRPID string `json:"passkey_rp_id,omitempty"`

	// Makes the realm an OpenID Connect provider for the clients it
	// lists (Grafana, Gitea, oauth2-proxy...), who sign in through this
	// login. Needs `login_url` (absolute) or its own `issuer`.
	OIDC *oidc.Config `json:"oidc,omitempty"`

	// Providers people may sign in with (GitHub, Google, any OpenID
	// Connect provider), each a button on the login page. Only users
	// linked to an identity there (a user's `sign_in_with`) sign in
	// through one.
	SignInWith []idp.Provider `json:"sign_in_with,omitempty"`

	// Who may sign in through a provider without an account here: a
	// guest's session is of the user `<provider>:<id>` and carries what
	// the provider said, sealed; nothing is stored. Default: no one.
	Guests *idp.Guests `json:"guests,omitempty"`

	// app is the routes and their services, made by Provision; store,
	// clock and slots are set by tests before it
	app   *routes.App
	store store.Module
	clock *session.Clock
	slots *guard.Slots
	// protected matches Protect; unregister leaves the admin API
	protected  caddyhttp.MatchPath
	unregister func()
}

// Account is a user who may sign in.
type Account struct {
	// The user's name.
	Username string `json:"username"`
	// The password hash in Modular Crypt Format as printed by `caddy
	// hash-password` (bcrypt `$2a$...` or argon2id `$argon2id$...`; both
	// kinds may be mixed); none for a user who signs in only through
	// `sign_in_with` providers. `{env.*}` and `{file.*}` placeholders in the
	// name and the hash are replaced at load time.
	Password string `json:"password,omitempty"`
	// The groups the user is in: `{http.miniapp.groups}` and the
	// `Remote-Groups` header of `/miniapp/auth` (comma-separated), and
	// its `group=` rules. Each 1 to 64 characters, without commas or
	// spaces.
	Groups []string `json:"groups,omitempty"`
	// The user's email address: `{http.miniapp.email}` and
	// `Remote-Email`.
	Email string `json:"email,omitempty"`
	// The user's display name: `{http.miniapp.name}` and `Remote-Name`.
	Name string `json:"name,omitempty"`
	// The identities at `sign_in_with` providers that sign in as the
	// user: the provider's stable ID of the person (OpenID Connect's
	// `sub`, GitHub's numeric user ID), or an e-mail address the provider
	// says is verified where its block says `link_by_email`. A user with
	// links may have no password hash: it signs in only through them
	// (and passkeys).
	Links []account.Link `json:"sign_in_with,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.miniapp",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision fills in defaults, loads the accounts, the store and the
// keys, and attaches the realm's revocation list.
func (h *Handler) Provision(ctx caddy.Context) error {
	if h.StoreRaw != nil {
		mod, err := ctx.LoadModule(h, "StoreRaw")
		if err != nil {
			return fmt.Errorf("loading store: %v", err)
		}
		h.store = mod.(store.Module)
	}
	return h.provision(ctx, ctx.Storage(), ctx.Logger())
}

// provision is Provision with the storage and logger given, as tests
// give their own (and may set the clock, the password check slots or the
// store first).
func (h *Handler) provision(ctx caddy.Context, st certmagic.Storage, logger *zap.Logger) error {
	if h.store == nil {
		h.store = storage.New(st)
	}
	h.setDefaults()
	if h.clock == nil {
		h.clock = new(session.Clock)
	}
	if h.slots == nil {
		h.slots = guard.ProcessSlots
	}
	configs := make([]account.Config, len(h.Accounts))
	for i, a := range h.Accounts {
		configs[i] = account.Config{Username: a.Username, Password: a.Password, Groups: a.Groups, Email: a.Email, Name: a.Name, Links: a.Links}
	}
	var err error
	h.app, err = routes.New(ctx, routes.Config{Realm: h.Realm, Accounts: configs, SecretKeys: h.SecretKeys,
		CookieName: h.CookieName, CookieDomain: h.CookieDomain, LoginURL: h.LoginURL,
		Lifetime: time.Duration(h.SessionLifetime), Idle: time.Duration(h.IdleTimeout), Sync: time.Duration(h.RevocationSync),
		MaxBody: h.MaxBodySize, Failures: h.LoginLimit.Failures, Window: time.Duration(h.LoginLimit.Window),
		Required: h.SecondFactor == factorRequired, TOTPIssuer: h.TOTPIssuer, Remember: time.Duration(h.RememberSecondFactor),
		PasswordHash: h.hasher(),
		Passkeys:     h.Passkeys == nil || *h.Passkeys, PasskeyRPID: h.PasskeyRPID,
		OIDC: h.OIDC, SignInWith: h.SignInWith, Guests: h.Guests,
		Store: h.store, Logger: logger, Clock: h.clock, Slots: h.slots, Count: realmCounter(h.Realm), CountOpenID: openIDCounter(h.Realm)})
	if err != nil {
		return err
	}
	h.protected = caddyhttp.MatchPath(h.Protect)
	if err := h.protected.Provision(ctx); err != nil {
		return fmt.Errorf("protect: %v", err)
	}
	if err := metrics.register(ctx.GetMetricsRegistry(), h.Realm); err != nil {
		return fmt.Errorf("registering metrics: %v", err)
	}
	h.register()
	return nil
}

// hasher is how managed accounts' passwords are hashed: password_hash,
// argon2id unless bcrypt.
func (h *Handler) hasher() users.Hasher {
	if h.PasswordHash == string(users.Bcrypt) {
		return users.Bcrypt
	}
	return users.Argon2id
}

// Cleanup releases the shared throttle and revocation list and leaves
// the admin API; it copes with a handler whose Provision failed half
// way.
func (h *Handler) Cleanup() error {
	if h.unregister != nil {
		h.unregister()
	}
	if h.app == nil {
		return nil
	}
	return errors.Join(h.app.Close()...)
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
