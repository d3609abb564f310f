package routes

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/caddy-miniapp/miniapp/internal/account"
	"github.com/caddy-miniapp/miniapp/internal/gate"
	"github.com/caddy-miniapp/miniapp/internal/idp"
	"github.com/caddy-miniapp/miniapp/internal/web"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
)

// SignInWithPrefix starts the paths of a sign-in through another
// provider: /login/with/<name> starts it, /login/with/<name>/callback
// is where the provider sends the browser back.
const SignInWithPrefix = "/login/with/"

// signInWithService makes the service of the `sign_in_with` blocks, nil
// without any, and checks the users' links against them.
func (a *App) signInWithService(c Config, replace func(string) string) (*idp.Service, error) {
	for i := range c.SignInWith {
		c.SignInWith[i].SetDefaults(replace)
	}
	if err := idp.ValidateAll(c.SignInWith); err != nil {
		return nil, err
	}
	s := idp.New(c.SignInWith, a.Keys, a.Clock)
	for acct := range a.Accounts.All() {
		for _, p := range s.Providers() {
			if strings.HasPrefix(acct.Name, p.Name+":") {
				return nil, fmt.Errorf("user %q: a name may not start with a provider's name and ':' (guests of %s are named so)", acct.Name, p.Name)
			}
		}
		for _, l := range acct.Links {
			p, ok := s.Provider(l.Provider)
			switch {
			case !ok:
				return nil, fmt.Errorf("user %q: sign_in_with %s: no such provider (a sign_in_with block names it)", acct.Name, l.Provider)
			case strings.Contains(l.Subject, "@") && !p.LinkByEmail:
				return nil, fmt.Errorf("user %q: sign_in_with %s %s: an e-mail address links only where the provider's block says link_by_email; use the provider's user ID", acct.Name, l.Provider, l.Subject)
			case p.IsGitHub() && strings.Trim(l.Subject, "0123456789") != "":
				return nil, fmt.Errorf("user %q: sign_in_with github %s: GitHub links by numeric user ID only (https://api.github.com/users/<login> shows it)", acct.Name, l.Subject)
			}
		}
	}
	if c.Guests != nil {
		if err := c.Guests.Validate(c.SignInWith); err != nil {
			return nil, err
		}
	}
	if len(c.SignInWith) == 0 {
		return nil, nil
	}
	return s, nil
}

// guestFactor refuses a guest's change of sign-in methods: a guest
// signs in through a provider, and sets up a second factor there.
func guestFactor() error {
	return web.Reject(http.StatusForbidden, "guests sign in through their provider: set up two-step sign-in there")
}

// providerLabel is the label of a provider of the sessions list: its
// block's, or its name for one the config no longer has.
func (a *App) providerLabel(name string) string {
	if a.IdP != nil {
		if p, ok := a.IdP.Provider(name); ok {
			return p.Label
		}
	}
	return name
}

// appendLinks appends the profile's list of the user's accounts at
// providers, none for a user without.
func (a *App) appendLinks(b []byte, links []account.Link) []byte {
	if len(links) == 0 {
		return b
	}
	return web.LinksList.AppendPage(b, func(b []byte, _ int) []byte {
		for _, l := range links {
			b = web.LinkRow.AppendPage(b, func(b []byte, field int) []byte {
				switch field {
				case web.RowName:
					return web.AppendText(b, a.providerLabel(l.Provider))
				case web.RowDetail:
					return web.AppendText(b, l.Subject)
				}
				return b
			})
		}
		return b
	})
}

// providerLinks are the login page's buttons, keeping next.
func (a *App) providerLinks(next string) []web.ProviderLink {
	if a.IdP == nil {
		return nil
	}
	var links []web.ProviderLink
	for _, p := range a.IdP.Providers() {
		href := SignInWithPrefix + p.Name
		if next != "" {
			href += "?next=" + url.QueryEscape(next)
		}
		links = append(links, web.ProviderLink{Label: p.Label, Href: href})
	}
	return links
}

// SignInWith starts a sign-in through a provider (GET
// /login/with/<name>?next=…: the flow's cookie, then 302 to the
// provider) or finishes it at the provider's callback (GET
// /login/with/<name>/callback).
func (a *App) SignInWith(w http.ResponseWriter, r *http.Request, in web.Request, _ *gate.Session) error {
	name, tail, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, SignInWithPrefix), "/")
	var p *idp.Provider
	ok := false
	if a.IdP != nil {
		p, ok = a.IdP.Provider(name)
	}
	if !ok || tail != "" && tail != "callback" {
		return web.Reject(http.StatusNotFound, "no such provider")
	}
	// GET alone: a HEAD must not start a sign-in nor use up its flow
	if err := web.Allow(w, r, "GET", http.MethodGet); err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	scheme := "http://"
	if in.Secure {
		scheme = "https://"
	}
	callback := scheme + strings.ToLower(r.Host) + SignInWithPrefix + p.Name + "/callback"
	if tail == "" {
		next, err := web.FormValue(r.URL.RawQuery, "next")
		if err != nil {
			return err
		}
		start, err := a.IdP.Begin(r.Context(), p, callback, a.domain.SafeNext(next, in.Secure))
		if err != nil {
			return a.signInWithFailed(w, r, in, "", err)
		}
		a.Gate.SetFlow(w.Header(), WireOf(r), start.Key, start.Cookie, idp.FlowLifetime)
		w.Header().Set("Location", start.URL)
		web.Write(w, r, http.StatusFound, web.TextPlain, []byte("Found\n"))
		return nil
	}
	// the code is the provider's secret for this site, and Caddy's
	// access and error logs record the URI: the callback is logged by the
	// sign-in, without it, and answered here, never through handle_errors
	caddyhttp.SetVar(r.Context(), caddyhttp.LogSkipVar, true)
	if err := a.signInWithCallback(w, r, in, p, callback); err != nil {
		a.Logger.Warn("sign-in through a provider refused", zap.String("path", r.URL.Path), zap.String("client_ip", in.Client), zap.Error(err))
		return a.Site.Refuse(w, r, in.Format, rejection(w, err))
	}
	return nil
}

// signInWithCallback finishes a sign-in at the provider's callback: the
// flow its state names, read once and used once, the code exchanged,
// the identity signed in as any login.
func (a *App) signInWithCallback(w http.ResponseWriter, r *http.Request, in web.Request, p *idp.Provider, callback string) error {
	q, err := web.QueryFields(r.URL.RawQuery, "code", "state", "iss", "error")
	if err != nil {
		return err
	}
	key, ok := idp.FlowKey(q["state"])
	if !ok {
		return a.signInWithFailed(w, r, in, "", &idp.Error{Status: http.StatusBadRequest, Reason: "the answer does not belong to a sign-in here; start again"})
	}
	sealed := a.Gate.TakeFlow(w.Header(), WireOf(r), key)
	f, err := a.IdP.Open(r.Context(), p, callback, sealed, idp.Callback{Code: q["code"], State: q["state"], Iss: q["iss"], Error: q["error"]})
	if err != nil {
		return a.signInWithFailed(w, r, in, "", err)
	}
	// used once, before its code is: at once on this node (and on every
	// node with Redis), on every node within the store's window
	flowID := f.ID()
	used, _, err := a.Shared.Strike(r.Context(), "sign-in-with:"+hex.EncodeToString(flowID[:]), 1, idp.FlowLifetime)
	if err == nil && used > 1 || a.Shared.RevokedID(f.ID(), f.ExpiresAt()) {
		return a.signInWithFailed(w, r, in, f.Next, &idp.Error{Status: http.StatusBadRequest, Reason: "this sign-in was finished already; start again"})
	}
	a.Shared.Revoke(r.Context(), f.ID(), f.ExpiresAt())
	exchange := func(ctx context.Context) (idp.Identity, error) { return a.IdP.Exchange(ctx, p, callback, f, q["code"]) }
	out := a.SignIn.Provider(r.Context(), w.Header(), p, exchange, clientOf(r, in))
	if _, failed := errors.AsType[*idp.Error](out.Err); failed {
		return a.signInWithFailed(w, r, in, f.Next, out.Err)
	}
	if out.CodeNeeded && in.Format == web.HTML {
		// the pending sign-in's cookie is SameSite=Strict: a redirect
		// begun at the provider's site would come without it, so the
		// code form is this answer, and its POST is this site's own
		w.Header().Set("Cache-Control", "no-store")
		return a.Site.Render(w, r, http.StatusOK, "login.html", web.PageData{Title: "Enter your code", Next: f.Next, CodeStep: true, TrustFor: a.trustFor()})
	}
	return a.answer(w, r, in.Format, f.Next, "", out)
}

// signInWithFailed answers a sign-in through a provider that could not
// go on, logged: the login page with the reason for a browser, the
// status and reason otherwise, never through handle_errors (see
// signInWith).
func (a *App) signInWithFailed(w http.ResponseWriter, r *http.Request, in web.Request, next string, err error) error {
	failed, ok := errors.AsType[*idp.Error](err)
	if !ok {
		return err
	}
	// the callback is not in the access log: every refusal is here
	a.Logger.Warn("sign-in through a provider failed", zap.String("path", r.URL.Path), zap.Int("status", failed.Status),
		zap.String("reason", failed.Reason), zap.String("client_ip", in.Client), zap.NamedError("cause", failed.Cause))
	if in.Format != web.HTML {
		return a.Site.Refuse(w, r, in.Format, web.Reject(failed.Status, failed.Reason))
	}
	return a.Site.Render(w, r, failed.Status, "login.html", web.PageData{Title: "Sign in", Error: failed.Reason, Next: next,
		Passkey: a.Passkeys != nil, Providers: a.providerLinks(next)})
}
