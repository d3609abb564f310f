// Package routes is each of the module's routes between the request and
// the flow that answers it: a route reads its request once into the
// value its service takes (signin, totp, passkey, sso, oidc, idp, users),
// and writes the outcome once through internal/web. It also wires those
// services from the config's values (New), so the root package keeps to
// Caddy's side: the config, ServeHTTP and its route table, the admin and
// command shells, the metrics.
//
// It must not know Caddy's module machinery (the root's JSON config,
// Provision, the admin API's registration) nor any flow's rules: those
// live in the packages it calls.
package routes

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/account"
	"github.com/caddy-miniapp/miniapp/internal/gate"
	"github.com/caddy-miniapp/miniapp/internal/guard"
	"github.com/caddy-miniapp/miniapp/internal/idp"
	"github.com/caddy-miniapp/miniapp/internal/oidc"
	"github.com/caddy-miniapp/miniapp/internal/passkey"
	"github.com/caddy-miniapp/miniapp/internal/records"
	"github.com/caddy-miniapp/miniapp/internal/session"
	"github.com/caddy-miniapp/miniapp/internal/signin"
	"github.com/caddy-miniapp/miniapp/internal/sso"
	"github.com/caddy-miniapp/miniapp/internal/totp"
	"github.com/caddy-miniapp/miniapp/internal/users"
	"github.com/caddy-miniapp/miniapp/internal/web"
	"github.com/caddy-miniapp/miniapp/store"
	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
)

// Counter counts the realm's events for its metrics.
type Counter interface {
	signin.Counter
	// Logout counts a session ended by its user.
	Logout()
}

// Config is what the routes and their services are made of: the
// handler's config with its defaults filled in, and the parts the root
// provides.
type Config struct {
	// Realm names the realm; Accounts are the Caddyfile's users.
	Realm    string
	Accounts []account.Config
	// SecretKeys seal the cookies; none: the realm's key set in Store.
	SecretKeys []string
	// CookieName, CookieDomain and LoginURL place the session cookie and
	// the login page.
	CookieName, CookieDomain, LoginURL string
	// Lifetime and Idle end sessions; Sync is how often a polled store is
	// read.
	Lifetime, Idle, Sync time.Duration
	// MaxBody bounds the request bodies the routes read.
	MaxBody int64
	// Failures in Window are a client's failed logins before it waits.
	Failures int
	Window   time.Duration
	// Required asks every session for two factors; TOTPIssuer names the
	// codes in authenticator apps; Remember is how long a browser may be
	// trusted for the second factor (0: never).
	Required   bool
	TOTPIssuer string
	Remember   time.Duration
	// PasswordHash hashes managed accounts' passwords.
	PasswordHash users.Hasher
	// Passkeys turns passkeys on, for PasskeyRPID (or the request's host).
	Passkeys    bool
	PasskeyRPID string
	// OIDC makes the realm an OpenID Connect provider; SignInWith are the
	// providers people sign in with, Guests who signs in through them
	// without an account here.
	OIDC       *oidc.Config
	SignInWith []idp.Provider
	Guests     *idp.Guests
	// Store is the realm's store backend; Place names it.
	Store store.Module
	// Logger logs; Clock tells the time (tests move it); Slots bound the
	// password checks at once.
	Logger *zap.Logger
	Clock  *session.Clock
	Slots  *guard.Slots
	// Count and CountOpenID count the realm's events.
	Count       Counter
	CountOpenID oidc.Counter
}

// App is the provisioned routes: the services they call, wired by New.
// Passkeys is nil when passkeys are off, Provider without `oidc`, IdP
// without `sign_in_with`.
type App struct {
	Accounts *account.Set
	Shared   *store.Realm
	Keys     *session.Keyring
	Records  *records.Store
	Clock    *session.Clock
	Logger   *zap.Logger
	Site     web.Site
	Gate     *gate.Gate
	TOTP     *totp.Service
	Passkeys *passkey.Service
	SignIn   *signin.Service
	Provider *oidc.Provider
	IdP      *idp.Service
	Users    *users.Service

	// realm, maxBody, remember, totpIssuer and required are as in
	// Config; domain places the cookie and the login page; guard guards
	// sign-ins
	realm      string
	maxBody    int64
	remember   time.Duration
	totpIssuer string
	required   bool
	domain     gate.Domain
	guard      guard.Guard

	count   Counter
	csrf    *http.CrossOriginProtection
	ignored sso.Ignored
	pages   pages
}

// New opens the realm's store and keys and wires the services over
// them. On an error the caller releases what it made (Close).
func New(ctx caddy.Context, c Config) (*App, error) {
	a := &App{realm: c.Realm, maxBody: c.MaxBody, remember: c.Remember, totpIssuer: c.TOTPIssuer, required: c.Required,
		Clock: c.Clock, Logger: c.Logger, count: c.Count, csrf: http.NewCrossOriginProtection()}
	var err error
	if a.domain, err = gate.NewDomain(c.CookieDomain, c.LoginURL, c.CookieName); err != nil {
		return a, err
	}
	a.Site = web.Site{Logger: c.Logger, CSP: a.domain.CSP}
	repl := caddy.NewReplacer()
	replace := func(s string) string { return repl.ReplaceKnown(s, "") }
	if a.Accounts, err = account.Load(c.Accounts, c.Realm, repl); err != nil {
		return a, err
	}
	if err := a.Accounts.Claim(ctx, c.Realm); err != nil {
		return a, err
	}
	if a.Accounts.Mixed {
		a.Logger.Warn("users' password hashes differ in algorithm or cost; an unknown name takes as long as a wrong password only for the users whose hashes are like most users' (hash them all alike with caddy hash-password)")
	}
	a.Shared, err = store.Join(ctx, c.Store, store.Options{Realm: c.Realm, Every: c.Sync, Remember: c.Lifetime, Now: c.Clock.Now, Logger: c.Logger})
	if err != nil {
		return a, fmt.Errorf("opening the store: %v", err)
	}
	if len(c.SecretKeys) > 0 {
		a.Keys, err = session.ParseKeys(c.SecretKeys, c.Realm, replace)
	} else {
		a.Keys, err = loadOrCreateKeyring(ctx, a.Shared, c.Store.Place()+"\x00"+c.Realm, c.Realm, c.Logger)
	}
	if err != nil {
		return a, fmt.Errorf("loading key set: %v", err)
	}
	a.Records = &records.Store{Realm: a.Shared, Keys: a.Keys, Logger: c.Logger, Accounts: a.Accounts}
	a.Records.Reseal(ctx)
	a.guard.Slots = c.Slots
	if a.guard.Throttle, err = guard.OpenThrottle(c.Realm, c.Failures, c.Window); err != nil {
		return a, err
	}
	a.wire(c)
	a.manageUsers(c.PasswordHash)
	if a.Provider, err = a.openIDProvider(ctx, c, replace); err != nil {
		return a, err
	}
	if a.IdP, err = a.signInWithService(c, replace); err != nil {
		return a, err
	}
	return a, nil
}

// wire builds the services the routes call, over the accounts, store,
// keys and guard.
func (a *App) wire(c Config) {
	a.Gate = &gate.Gate{Keys: a.Keys, Shared: a.Shared, Accounts: a.Accounts, Clock: a.Clock, Name: c.CookieName, Domain: a.domain,
		Lifetime: c.Lifetime, Idle: c.Idle}
	a.TOTP = &totp.Service{Records: a.Records, Clock: a.Clock, Logger: a.Logger}
	if c.Passkeys {
		a.Passkeys = &passkey.Service{Records: a.Records, Clock: a.Clock, Logger: a.Logger, RPID: strings.ToLower(c.PasskeyRPID),
			Domain: a.domain.Name, Name: c.TOTPIssuer}
		a.Passkeys.SetAccounts(a.Accounts.All())
	}
	a.SignIn = &signin.Service{Realm: c.Realm, Accounts: a.Accounts, Guard: a.guard, TOTP: a.TOTP, Passkeys: a.Passkeys, Gate: a.Gate,
		Required: c.Required, Guests: c.Guests, Remember: c.Remember, Clock: a.Clock, Logger: a.Logger, Count: c.Count}
	if c.Guests != nil {
		a.Gate.Guests = a.SignIn.GuestAccount
	}
}

// Close releases the shared throttle and the realm's store; it copes
// with an App that New left half made.
func (a *App) Close() []error {
	var errs []error
	if a.guard.Throttle != nil {
		errs = append(errs, a.guard.Throttle.Release())
	}
	if a.Shared != nil {
		errs = append(errs, a.Shared.Release())
	}
	return errs
}

// sameOrigin refuses cross-site POSTs with 403.
func (a *App) sameOrigin(r *http.Request) error {
	if a.csrf.Check(r) != nil {
		return web.Reject(http.StatusForbidden, "cross-origin request refused")
	}
	return nil
}

// clientOf is who the request comes from, for a sign-in.
func clientOf(r *http.Request, in web.Request) signin.Client {
	return signin.Client{Wire: gate.Wire{Cookies: r.Header["Cookie"], Secure: in.Secure, Host: in.Host}, IP: in.Client,
		UserAgent: r.UserAgent()}
}

// WireOf is what the gate reads of the request: its cookies, whether it
// came over HTTPS, its host.
func WireOf(r *http.Request) gate.Wire {
	return gate.Wire{Cookies: r.Header["Cookie"], Secure: web.Secure(r), Host: web.Host(r)}
}

// SignInFirst answers a request that needs a session: browsers go to the
// login page and come back afterwards, other clients get 401.
func (a *App) SignInFirst(w http.ResponseWriter, r *http.Request, in web.Request, _ *gate.Session) error {
	if in.Format == web.HTML {
		next := r.URL.RequestURI()
		if a.domain.Name != "" {
			// the login site is another host: come back to this one
			next = web.URL(r)
		}
		web.Redirect(w, r, a.domain.SignInURL(next))
		return nil
	}
	w.Header().Set("WWW-Authenticate", a.challenge(r))
	return web.Reject(http.StatusUnauthorized, "sign in required")
}

// challenge is the WWW-Authenticate value of a 401: there is no standard
// scheme for a login form, so it follows the cookie authentication draft
// (draft-broyer-http-cookie-auth) in naming the form and the cookie.
func (a *App) challenge(r *http.Request) string {
	return `Cookie realm="` + a.realm + `", form-action="` + a.domain.LoginURL + `", cookie-name="` + a.Gate.CookieName(WireOf(r)) + `"`
}

// rejection is a route's error as the site answers it: a sign-in's
// refusal becomes its status and reason, with its Retry-After.
func rejection(w http.ResponseWriter, err error) error {
	if refusal, ok := errors.AsType[*signin.Refusal](err); ok {
		if refusal.Wait > 0 {
			w.Header().Set("Retry-After", refusal.RetryAfter())
		}
		return web.Reject(refusal.Status, refusal.Reason)
	}
	return err
}

// Fail answers a route's error as the site answers errors.
func (a *App) Fail(w http.ResponseWriter, r *http.Request, f web.Format, err error) error {
	return a.Site.Fail(w, r, f, rejection(w, err))
}
