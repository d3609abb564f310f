package miniapp

import (
	"strconv"

	"github.com/caddy-miniapp/miniapp/internal/account"
	"github.com/caddy-miniapp/miniapp/internal/idp"
	"github.com/caddy-miniapp/miniapp/internal/oidc"
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dustin/go-humanize"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("miniapp", parseCaddyfile)
	httpcaddyfile.RegisterDirectiveOrder("miniapp", httpcaddyfile.After, "encode")
}

// repeatable are the subdirectives that may appear more than once.
var repeatable = map[string]bool{"user": true, "secret_key": true, "protect": true, "sign_in_with": true}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	miniapp {
//	    user <name> [<hash>] [{
//	        sign_in_with <provider> <id or e-mail>
//	        groups <group...>
//	        email <address>
//	        name <display name>
//	    }]
//	    cookie_domain <domain>
//	    login_url <url>
//	    secret_key <base64 key> [<older keys>...]
//	    session_lifetime <duration>
//	    cookie_name <name>
//	    max_body_size <size>
//	    idle_timeout <duration>
//	    login_limit <failures> <window>
//	    protect <path patterns...>
//	    revocation_sync <duration>
//	    realm <name>
//	    store storage | store redis { ... }
//	    second_factor optional | required
//	    totp_issuer <name>
//	    passkeys on | off
//	    passkey_rp_id <domain>
//	    oidc { ... }
//	    sign_in_with <provider> { ... }
//	    guests { ... }
//	}
//
// `user`, `secret_key`, `protect` and `sign_in_with` may be repeated; every other
// subdirective may appear once.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	seen := map[string]bool{}
	for d.NextBlock(0) {
		sub := d.Val()
		if !repeatable[sub] {
			if seen[sub] {
				return d.Errf("duplicate subdirective %s", sub)
			}
			seen[sub] = true
		}
		if err := h.unmarshalSubdirective(d, sub); err != nil {
			return err
		}
	}
	return nil
}

// unmarshalSubdirective reads one line of the block.
func (h *Handler) unmarshalSubdirective(d *caddyfile.Dispenser, sub string) error {
	var err error
	switch sub {
	case "user":
		acct, uerr := userBlock(d)
		if uerr != nil {
			return uerr
		}
		h.Accounts = append(h.Accounts, acct)
	case "sign_in_with":
		p, perr := idp.ParseProvider(d)
		h.SignInWith = append(h.SignInWith, p)
		err = perr
	case "guests":
		h.Guests, err = idp.ParseGuests(d)
	case "cookie_domain":
		err = oneArg(d, &h.CookieDomain)
	case "login_url":
		err = oneArg(d, &h.LoginURL)
	case "secret_key":
		keys, aerr := oneOrMore(d)
		h.SecretKeys = append(h.SecretKeys, keys...)
		err = aerr
	case "realm":
		err = oneArg(d, &h.Realm)
	case "second_factor":
		err = oneArg(d, &h.SecondFactor)
	case "totp_issuer":
		err = oneArg(d, &h.TOTPIssuer)
	case "password_hash":
		err = oneArg(d, &h.PasswordHash)
	case "remember_second_factor":
		var v string
		if err = oneArg(d, &v); err == nil {
			dur, perr := caddy.ParseDuration(v)
			if perr != nil || dur < 0 {
				return d.Errf("remember_second_factor must be a duration (30d), got %q", v)
			}
			h.RememberSecondFactor = caddy.Duration(dur)
		}
	case "passkeys":
		var v string
		if err = oneArg(d, &v); err == nil {
			if v != "on" && v != "off" {
				return d.Errf("passkeys must be on or off, got %q", v)
			}
			on := v == "on"
			h.Passkeys = &on
		}
	case "passkey_rp_id":
		err = oneArg(d, &h.PasskeyRPID)
	case "oidc":
		h.OIDC = new(oidc.Config)
		err = h.OIDC.UnmarshalCaddyfile(d)
	case "store":
		if !d.NextArg() {
			return d.ArgErr()
		}
		name := d.Val()
		mod, uerr := caddyfile.UnmarshalModule(d, "http.handlers.miniapp.stores."+name)
		if uerr != nil {
			return uerr
		}
		h.StoreRaw = caddyconfig.JSONModuleObject(mod, "backend", name, nil)
	case "session_lifetime":
		h.SessionLifetime, err = durationArg(d)
	case "idle_timeout":
		h.IdleTimeout, err = durationArg(d)
	case "revocation_sync":
		h.RevocationSync, err = durationArg(d)
	case "login_limit":
		h.LoginLimit, err = loginLimitArgs(d)
	case "protect":
		patterns, aerr := oneOrMore(d)
		h.Protect = append(h.Protect, patterns...)
		err = aerr
	case "cookie_name":
		err = oneArg(d, &h.CookieName)
	case "max_body_size":
		var val string
		if !d.Args(&val) || d.NextArg() {
			return d.ArgErr()
		}
		size, perr := humanize.ParseBytes(val)
		if perr != nil || size == 0 || size > 1<<40 {
			return d.Errf("max_body_size: invalid size %q", val)
		}
		h.MaxBodySize = int64(size)
	default:
		return d.Errf("unknown subdirective %q", sub)
	}
	return err
}

// userBlock reads `user <name> <hash>` and its optional block of
// `groups`, `email` and `name`.
func userBlock(d *caddyfile.Dispenser) (Account, error) {
	var acct Account
	if !d.Args(&acct.Username) {
		return acct, d.ArgErr()
	}
	d.Args(&acct.Password)
	if d.NextArg() {
		return acct, d.ArgErr()
	}
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		sub := d.Val()
		if seen[sub] {
			return acct, d.Errf("duplicate subdirective %s", sub)
		}
		seen[sub] = sub != "sign_in_with"
		var err error
		switch sub {
		case "sign_in_with":
			var l account.Link
			if !d.Args(&l.Provider, &l.Subject) || d.NextArg() {
				return acct, d.ArgErr()
			}
			acct.Links = append(acct.Links, l)
		case "groups":
			acct.Groups, err = oneOrMore(d)
		case "email":
			err = oneArg(d, &acct.Email)
		case "name":
			err = oneArg(d, &acct.Name)
		default:
			return acct, d.Errf("unknown subdirective of user %q", sub)
		}
		if err != nil {
			return acct, err
		}
	}
	return acct, nil
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

// oneArg reads the one argument of the current subdirective.
func oneArg(d *caddyfile.Dispenser, dst *string) error {
	if !d.Args(dst) || d.NextArg() {
		return d.ArgErr()
	}
	return nil
}

// oneOrMore reads the arguments of the current subdirective, at least one.
func oneOrMore(d *caddyfile.Dispenser) ([]string, error) {
	args := d.RemainingArgs()
	if len(args) == 0 {
		return nil, d.ArgErr()
	}
	return args, nil
}

// LoginLimit is how many failed logins a client may make in a window.
type LoginLimit struct {
	// Failed attempts allowed in the window. Default: 5.
	Failures int `json:"failures,omitempty"`
	// The window, counted from the client's first failure. Default: 1m.
	Window caddy.Duration `json:"window,omitempty"`
}

// loginLimitArgs reads `login_limit <failures> <window>`.
func loginLimitArgs(d *caddyfile.Dispenser) (*LoginLimit, error) {
	var count, window string
	if !d.Args(&count, &window) || d.NextArg() {
		return nil, d.ArgErr()
	}
	n, err := strconv.Atoi(count)
	if err != nil || n < 1 {
		return nil, d.Errf("login_limit: failures must be a positive number, got %q", count)
	}
	dur, err := caddy.ParseDuration(window)
	if err != nil || dur <= 0 {
		return nil, d.Errf("login_limit: window must be a positive duration, got %q", window)
	}
	return &LoginLimit{Failures: n, Window: caddy.Duration(dur)}, nil
}

// parseCaddyfile makes a handler from the miniapp directive.
func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	m := new(Handler)
	err := m.UnmarshalCaddyfile(h.Dispenser)
	return m, err
}

// Interface guard
var _ caddyfile.Unmarshaler = (*Handler)(nil)
