package routes

import (
	"cmp"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/account"
	"github.com/caddy-miniapp/miniapp/internal/gate"
	"github.com/caddy-miniapp/miniapp/internal/oidc"
	"github.com/caddy-miniapp/miniapp/internal/session"
	"github.com/caddy-miniapp/miniapp/internal/web"
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
)

// openIDProvider makes the realm's OpenID Connect provider of the `oidc`
// config, nil without one.
func (a *App) openIDProvider(ctx caddy.Context, c Config, replace func(string) string) (*oidc.Provider, error) {
	if c.OIDC == nil {
		return nil, nil
	}
	c.OIDC.SetDefaults(c.LoginURL, replace)
	if err := c.OIDC.Validate(); err != nil {
		return nil, err
	}
	a.Site.CSP = strings.Replace(a.Site.Policy(), "form-action 'self'", "form-action 'self' "+strings.Join(c.OIDC.FormActions(), " "), 1)
	o := oidc.Options{Realm: a.realm, Accounts: a.Accounts, Shared: a.Shared, Records: a.Records, Keys: a.Keys, Clock: a.Clock,
		Logger: a.Logger, Counter: c.CountOpenID}
	if c.Guests != nil {
		o.Guests = func(user string, g *session.Guest) (*account.Account, bool) {
			return a.SignIn.GuestAccount(&session.Session{User: user, Guest: g})
		}
	}
	p, err := oidc.New(ctx, c.OIDC, o)
	if err != nil {
		return nil, err
	}
	a.SignIn.Ended = p.LoggedOut
	if a.Passkeys != nil {
		a.Passkeys.Ended = p.LoggedOut
	}
	// what this config ended (users removed, new passwords) is told to
	// the clients once the config runs
	go func() {
		select {
		case <-time.After(oidc.SweepAfter):
			p.Sweep(ctx)
		case <-ctx.Done():
		}
	}()
	return p, nil
}

// OpenID serves the provider's paths: the callback (where a signed-in
// session finishes an authorization) and end_session here, the
// protocol's endpoints through the library.
func (a *App) OpenID(w http.ResponseWriter, r *http.Request, in web.Request, sess *gate.Session) error {
	switch r.URL.Path {
	case oidc.CallbackPath:
		return a.openIDCallback(w, r, in, sess)
	case oidc.EndSessionPath:
		return a.endSession(w, r, in, sess)
	case oidc.GrantsPath:
		return a.signOutOfApp(w, r, in, sess)
	}
	if oidc.Credentialed(r.URL.Path) && r.URL.RawQuery != "" {
		// a token, code or secret in the URL would reach Caddy's access
		// log: this request is logged here, without its query
		caddyhttp.SetVar(r.Context(), caddyhttp.LogSkipVar, true)
		a.Logger.Info("OpenID Connect request refused: parameters in the URL", zap.String("path", r.URL.Path),
			zap.String("client_ip", in.Client))
		return web.Reject(http.StatusBadRequest, "send the parameters in the request body or the Authorization header, never in the URL")
	}
	// the library reads forms whole (multipart too) and logs what it
	// refuses: bound them as the module's own routes are
	if len(r.URL.RawQuery) > web.MaxNextLen {
		return web.Reject(http.StatusRequestURITooLong, "the query is longer than 4096 bytes")
	}
	if r.Body != nil && r.Body != http.NoBody {
		if web.MediaTypeIs(r.Header.Get("Content-Type"), "multipart/form-data") {
			return web.Reject(http.StatusUnsupportedMediaType, "content type must be application/x-www-form-urlencoded")
		}
		if err := web.LimitBody(w, r, a.maxBody); err != nil {
			return err
		}
	}
	if a.Provider.ServeHTTP(w, r) {
		return web.Reject(http.StatusBadRequest, "the sign-in request has no known client_id or a redirect_uri its client has not registered")
	}
	return nil
}

// openIDCallback finishes an authorization request with the browser's
// session: back to the client with a code or an error, or to the login
// page first.
func (a *App) openIDCallback(w http.ResponseWriter, r *http.Request, in web.Request, sess *gate.Session) error {
	if err := web.Allow(w, r, "GET, HEAD", http.MethodGet, http.MethodHead); err != nil {
		return err
	}
	id, err := web.FormValue(r.URL.RawQuery, "id")
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	if sess != nil && a.SignIn.MustEnrol(sess) {
		web.Redirect(w, r, TOTPPath)
		return nil
	}
	var signed *oidc.Signed
	if sess != nil {
		signed = &oidc.Signed{User: sess.User, Account: sess.Account.ID, Groups: sess.Account.Groups,
			HasFactor: a.SignIn.HasFactor(sess.Account), Session: sess.ID, Expires: sess.Expires, Counter: sess.Counter,
			Generation: sess.Generation, Issued: sess.Issued, Factors: sess.Factors, Method: sess.Method, Guest: sess.Guest}
		if sess.Link != nil {
			tag := sess.Account.LinkTag(*sess.Link)
			signed.Link = tag[:]
		}
		signed.Key = sess.Account.SubjectKey()
		if sess.Guest != nil {
			signed.Key = "guest:" + sess.User
		}
	}
	d := a.Provider.Finish(id, signed)
	switch d.Step {
	case oidc.Refuse:
		return web.Reject(http.StatusBadRequest, d.Reason)
	case oidc.SignIn:
		return a.SignInFirst(w, r, in, nil)
	}
	if client, ok := d.Code(); ok {
		// the answer's Location carries the code, and Caddy's access
		// log records response headers: this request is logged here,
		// without it
		caddyhttp.SetVar(r.Context(), caddyhttp.LogSkipVar, true)
		a.Logger.Info("OpenID Connect sign-in", zap.String("user", sess.User), zap.String("client", client),
			zap.String("client_ip", in.Client))
	}
	a.Provider.Respond(w, r, d)
	return nil
}

// endSession is the provider's end_session: with an id_token_hint of
// the browser's session it ends that session and goes on to the
// client's registered post_logout_redirect_uri; otherwise it shows the
// sign-out page, whose button does it.
func (a *App) endSession(w http.ResponseWriter, r *http.Request, in web.Request, sess *gate.Session) error {
	if err := web.Allow(w, r, "GET, HEAD, POST", http.MethodGet, http.MethodHead, http.MethodPost); err != nil {
		return err
	}
	names := []string{"id_token_hint", "post_logout_redirect_uri", "state", "client_id"}
	var fields web.Fields
	var err error
	if r.Method == http.MethodPost {
		// a relying party's form, from its own site: the hint is
		// the proof, not the origin
		if fields, err = web.ReadFields(w, r, a.maxBody, names...); err != nil {
			return err
		}
	} else {
		if fields, err = web.QueryFields(r.URL.RawQuery, names...); err != nil {
			return err
		}
		if fields["id_token_hint"] != "" {
			// an ID token in the query, which Caddy's access log
			// records: a logout it leads to is logged here
			caddyhttp.SetVar(r.Context(), caddyhttp.LogSkipVar, true)
		}
	}
	w.Header().Set("Cache-Control", "no-store")
	var current [16]byte
	if sess != nil {
		current = sess.ID
	}
	out := a.Provider.EndSession(r.Context(), fields["id_token_hint"], fields["post_logout_redirect_uri"], fields["state"],
		fields["client_id"], current)
	if !out.End {
		data := web.PageData{Title: "Sign out"}
		if sess != nil {
			data.User = sess.User
		}
		return a.Site.Render(w, r, http.StatusOK, "logout.html", data)
	}
	a.signOut(w, r, in, sess, false)
	web.Redirect(w, r, cmp.Or(out.Redirect, a.domain.LoginURL))
	return nil
}

// signOutOfApp revokes one of the signed-in user's grants, chosen on
// the profile page ("sign out of this app"), and goes back to the
// profile.
func (a *App) signOutOfApp(w http.ResponseWriter, r *http.Request, in web.Request, sess *gate.Session) error {
	if err := web.Allow(w, r, "POST", http.MethodPost); err != nil {
		return err
	}
	if err := a.sameOrigin(r); err != nil {
		return err
	}
	if sess == nil {
		return a.SignInFirst(w, r, in, nil)
	}
	body, err := web.ReadFields(w, r, a.maxBody, "grant")
	if err != nil {
		return err
	}
	id, ok := oidc.ParseGrant(body["grant"])
	if !ok {
		return web.Reject(http.StatusBadRequest, "grant must be 32 hex digits")
	}
	grants, err := a.Provider.Grants(sess.User)
	if err != nil || !slices.ContainsFunc(grants, func(g oidc.GrantInfo) bool { return g.ID == body["grant"] }) {
		return web.Reject(http.StatusNotFound, "no such app of this user")
	}
	if err := a.Provider.RevokeGrant(r.Context(), sess.User, id); err != nil {
		return web.Reject(http.StatusServiceUnavailable, "the store did not answer; try again")
	}
	a.Logger.Info("OpenID Connect grant revoked", zap.String("user", sess.User), zap.String("by", "profile page"),
		zap.String("client_ip", in.Client))
	web.Redirect(w, r, "/profile")
	return nil
}
