package oidc

import (
	"net/http"
	"slices"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/session"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// Signed is the browser's session at the callback, as the route read it.
type Signed struct {
	// User names the account, Account is its ID, Groups its groups and
	// HasFactor whether it has a second factor to sign in with.
	User      string
	Account   [16]byte
	Groups    []string
	HasFactor bool
	// Session, Expires, Counter and Generation bind the grant to the
	// session (its end ends the grant's tokens, but an offline grant's);
	// Issued, Factors and Method are when and how it began.
	Session    [16]byte
	Expires    time.Time
	Counter    uint32
	Generation uint64
	Issued     time.Time
	Factors    uint8
	Method     session.Method
	// Guest is what a guest's provider said (sign_in_with's guests), nil
	// for a configured account: a guest's grant carries it, its sub is
	// derived from guest:<provider>:<id>, and it is live while the
	// config admits the guest.
	Guest *session.Guest
	// Link is the tag of the account's link a session begun through a
	// provider is bound to (nil for any other): its grants end with the
	// link as the session does.
	Link []byte
	// Key is what the account's sub is derived from: cfg:<name>,
	// uid:<id> (a managed account) or guest:<provider>:<id>.
	Key string
}

// Step is what the route does with an authorization request at its
// callback.
type Step int

// The steps of a callback.
const (
	// Refuse: the request is unknown or expired; an error page, never a
	// redirect (its redirect URI cannot be trusted).
	Refuse Step = iota
	// SignIn: the browser goes to the login page and comes back.
	SignIn
	// Respond: back to the client, with a code or an error.
	Respond
)

// Decision is the outcome of an authorization request at its callback.
type Decision struct {
	Step Step
	// Reason says why a request is refused.
	Reason string
	req    *request
	err    *oidc.Error
}

// Finish decides an authorization request (its ID) for the browser's
// session s (nil for none): a code for a session the client accepts,
// the login page for none or one that is too old or has too few factors
// (unless prompt=none), an error to the client otherwise.
func (p *Provider) Finish(id string, s *Signed) Decision {
	now := p.clock.Now()
	r, err := openRequest(p.seal, id, now)
	c := (*Client)(nil)
	if err == nil {
		c = p.cfg.client(r.ClientID)
	}
	if c == nil {
		return Decision{Step: Refuse, Reason: "the sign-in request is unknown or has expired: start again from the app"}
	}
	silent := slices.Contains(r.Prompt, oidc.PromptNone)
	again := func(e *oidc.Error) Decision {
		if silent {
			return Decision{Step: Respond, req: r, err: e}
		}
		return Decision{Step: SignIn}
	}
	if s == nil {
		return again(oidc.ErrLoginRequired())
	}
	fresh := !s.Issued.Before(time.Unix(r.Created, 0))
	sub := Subject(p.realm, s.Key)
	if r.Hint != "" && r.Hint != sub && !fresh {
		return again(oidc.ErrLoginRequired().WithDescription("another user is signed in"))
	}
	if r.MaxAge != nil && s.Issued.Before(time.Unix(r.Created, 0).Add(-time.Duration(*r.MaxAge)*time.Second)) && !fresh {
		return again(oidc.ErrLoginRequired().WithDescription("the session is older than max_age"))
	}
	if !c.member(s.Groups) {
		p.refused(c.ID, "groups")
		return Decision{Step: Respond, req: r, err: oidc.ErrAccessDenied().WithDescription("this account may not sign in to this app")}
	}
	if s.Factors < 2 {
		required := c.SecondFactor == "required"
		switch {
		case required && (!s.HasFactor || fresh):
			p.refused(c.ID, "second_factor")
			return Decision{Step: Respond, req: r, err: oidc.ErrAccessDenied().WithDescription("this app needs a sign-in with a second factor")}
		case required || r.ACR == ACRMultiFactor && s.HasFactor && !fresh:
			// acr_values is a request, not a demand: a user without a
			// second factor signs in without one
			return again(oidc.ErrInteractionRequired().WithDescription("this app needs a sign-in with a second factor"))
		}
	}
	g := &Grant{ID: session.Random(16), User: s.User, Subject: sub, Guest: s.Guest, Link: s.Link, Account: s.Account[:], Counter: s.Counter,
		Generation: s.Generation, Session: s.Session[:], SessionExpires: s.Expires.Unix(), AuthTime: s.Issued.Unix(),
		Factors: s.Factors, Method: uint8(s.Method), Expires: now.Add(CodeLifetime).Unix()}
	if r.ACR == ACRMultiFactor && s.Factors >= 2 {
		g.ACR = ACRMultiFactor
	}
	if r.Offline() {
		g.Until = now.Add(time.Duration(p.cfg.RefreshTokenLifetime)).Unix()
	} else {
		g.Until = min(now.Add(CodeLifetime+time.Duration(p.cfg.AccessTokenLifetime)).Unix(), g.SessionExpires)
	}
	p.issued(c.ID, "code")
	return Decision{Step: Respond, req: r.granted(g)}
}

// Code reports whether the decision sends a code, to its client.
func (d Decision) Code() (client string, ok bool) {
	if d.Step != Respond || d.err != nil {
		return "", false
	}
	return d.req.ClientID, true
}

// Respond writes a Respond decision: the browser goes back to the
// client's redirect URI with a code, or with the error.
func (p *Provider) Respond(w http.ResponseWriter, r *http.Request, d Decision) {
	if d.err != nil {
		op.AuthRequestError(w, r, d.req, d.err, p.op)
		return
	}
	op.AuthResponse(d.req, p.op, w, r)
}
