package admin

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/account"
	"github.com/caddy-miniapp/miniapp/internal/oidc"
	"github.com/caddy-miniapp/miniapp/internal/passkey"
	"github.com/caddy-miniapp/miniapp/internal/records"
	"github.com/caddy-miniapp/miniapp/internal/totp"
	"github.com/caddy-miniapp/miniapp/internal/users"
	"github.com/caddy-miniapp/miniapp/store"
	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
)

// The endpoints of the accounts managed in the realm's store:
//
//	POST   /miniapp/users                {"name", "groups", "email", "display_name", "valid", "site"}
//	GET    /miniapp/users
//	PATCH  /miniapp/users/<name>         {"groups", "email", "display_name"}
//	DELETE /miniapp/users/<name>
//	POST   /miniapp/users/<name>/reset   {"valid", "site"}
//
// Invites, resets and removals are logged with the admin's address,
// never a token.

// NewUser is the body of POST /miniapp/users.
type NewUser struct {
	Name        string   `json:"name"`
	Groups      []string `json:"groups,omitempty"`
	Email       string   `json:"email,omitempty"`
	DisplayName string   `json:"display_name,omitempty"`
	// Valid is how long the invite works (a Caddy duration: 48h, 7d);
	// Site is the site whose /login/invite the link names where the
	// handler has no absolute login_url.
	Valid string `json:"valid,omitempty"`
	Site  string `json:"site,omitempty"`
}

// UserChange is the body of PATCH /miniapp/users/<name>: the fields to
// change.
type UserChange struct {
	Groups      *[]string `json:"groups,omitempty"`
	Email       *string   `json:"email,omitempty"`
	DisplayName *string   `json:"display_name,omitempty"`
}

// Invite is the answer of POST /miniapp/users (with the name) and of a
// reset: the one-time token, and the link that carries it in its
// fragment.
type Invite struct {
	Name  string `json:"name,omitempty"`
	Token string `json:"token"`
	Link  string `json:"link"`
}

// User is a managed user as GET /miniapp/users lists it: as the store
// keeps it, with what its sessions and records say.
type User struct {
	users.Info
	// LastSignIn is the start of the user's newest session this node
	// knows, nil for none.
	LastSignIn *time.Time `json:"last_sign_in"`
	// Factors are its second factors (totp, passkey).
	Factors []string `json:"factors"`
}

// UserRemoved is the answer of DELETE /miniapp/users/<name>.
type UserRemoved struct {
	User  string `json:"user"`
	Ended int    `json:"ended"`
}

// usersRoot serves POST and GET /miniapp/users.
func usersRoot(w http.ResponseWriter, r *http.Request) error {
	n, err := usersNode(r)
	if err != nil {
		return err
	}
	switch r.Method {
	case http.MethodGet:
		list := n.Users.List()
		out := make([]User, 0, len(list))
		for _, u := range list {
			out = append(out, userOf(n, u))
		}
		return writeJSON(w, out)
	case http.MethodPost:
		in, valid, base, err := readLinkRequest(r, n)
		if err != nil {
			return err
		}
		switch {
		case inConfig(r, in.Name):
			return apiError(http.StatusConflict, users.ErrInConfig)
		case n.Users.Exists(in.Name):
			return apiError(http.StatusConflict, users.ErrExists)
		}
		token, err := n.Users.Create(r.Context(), in.Name, users.Profile{Groups: &in.Groups, Email: &in.Email, DisplayName: &in.DisplayName}, valid)
		if err != nil {
			return userError(err)
		}
		link := base + invitePath + token
		n.Logger.Info("user invited", zap.String("user", in.Name), zap.String("by", "admin API"), zap.String("remote_addr", r.RemoteAddr))
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		return json.NewEncoder(w).Encode(Invite{Name: in.Name, Token: token, Link: link})
	}
	w.Header().Set("Allow", "GET, POST")
	return apiError(http.StatusMethodNotAllowed, errors.New("method not allowed"))
}

// userPath serves PATCH and DELETE /miniapp/users/<name> and POST
// /miniapp/users/<name>/reset.
func userPath(w http.ResponseWriter, r *http.Request) error {
	n, err := usersNode(r)
	if err != nil {
		return err
	}
	name, tail, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/miniapp/users/"), "/")
	if tail != "" && tail != "reset" {
		return apiError(http.StatusNotFound, errors.New("no such endpoint"))
	}
	// a managed user whose name a reload gave to the Caddyfile can only
	// be removed: the name is the config's everywhere else
	shadowed := n.Accounts.InConfig(name)
	switch {
	case !n.Users.Exists(name) && !shadowed:
		return apiError(http.StatusNotFound, users.ErrNoUser)
	case shadowed && (!n.Users.Exists(name) || tail != "" || r.Method != http.MethodDelete):
		return apiError(http.StatusConflict, users.ErrInConfig)
	}
	switch {
	case tail == "reset" && r.Method == http.MethodPost:
		return resetUser(w, r, n, name)
	case tail == "" && r.Method == http.MethodPatch:
		var in UserChange
		if err := readJSON(r, &in); err != nil {
			return err
		}
		if err := n.Users.Update(r.Context(), name, users.Profile(in)); err != nil {
			return userError(err)
		}
		n.Logger.Info("user changed", zap.String("user", name), zap.String("by", "admin API"), zap.String("remote_addr", r.RemoteAddr))
		list := n.Users.List()
		i := slices.IndexFunc(list, func(u users.Info) bool { return u.Name == name })
		if i < 0 {
			return apiError(http.StatusNotFound, users.ErrNoUser)
		}
		return writeJSON(w, userOf(n, list[i]))
	case tail == "" && r.Method == http.MethodDelete:
		return removeUser(w, r, n, name)
	}
	if tail == "reset" {
		w.Header().Set("Allow", http.MethodPost)
	} else {
		w.Header().Set("Allow", "PATCH, DELETE")
	}
	return apiError(http.StatusMethodNotAllowed, errors.New("method not allowed"))
}

// resetUser ends a user's password and sessions and makes a link to set
// a new one.
func resetUser(w http.ResponseWriter, r *http.Request, n *Node, name string) error {
	_, valid, base, err := readLinkRequest(r, n)
	if err != nil {
		return err
	}
	before, known := n.Users.Lookup(name)
	token, err := n.Users.Reset(r.Context(), name, valid)
	if err != nil {
		return userError(err)
	}
	if known {
		n.Shared.SignOutEverywhere(r.Context(), store.AccountID(before.ID))
		loggedOutAccount(r, before)
	}
	if err := n.TOTP.UntrustAll(r.Context(), name); err != nil {
		return apiError(http.StatusServiceUnavailable, errors.New("the password and sessions ended; its trusted browsers did not (the store did not answer): try again"))
	}
	n.Logger.Info("user's password reset", zap.String("user", name), zap.String("by", "admin API"), zap.String("remote_addr", r.RemoteAddr))
	return writeJSON(w, Invite{Token: token, Link: base + invitePath + token})
}

// removeUser removes a user: its sessions, second factor, passkeys and
// OpenID Connect grants end with it (their apps told). A user shadowed
// by the Caddyfile's of the name leaves that user's sessions and apps
// alone.
func removeUser(w http.ResponseWriter, r *http.Request, n *Node, name string) error {
	acct, err := n.Users.Remove(r.Context(), name)
	if err != nil {
		return userError(err)
	}
	out := UserRemoved{User: name}
	if acct != nil {
		id := store.AccountID(acct.ID)
		listed, others := n.Shared.Sessions(nil, id, [16]byte{})
		out.Ended = len(listed) + others
		n.Shared.SignOutEverywhere(r.Context(), id)
		loggedOutAccount(r, acct)
		if err := clearRecords(r, n, acct); err != nil {
			n.Logger.Warn("a removed user's records stay in the store, where no account reads them", zap.String("user", name), zap.Error(err))
		}
	}
	n.Logger.Info("user removed", zap.String("user", name), zap.Int("sessions", out.Ended), zap.String("by", "admin API"),
		zap.String("remote_addr", r.RemoteAddr))
	return writeJSON(w, out)
}

// clearRecords removes what hangs on a managed account's ID: its
// second factor, trusted browsers, passkeys and OpenID Connect grants.
func clearRecords(r *http.Request, n *Node, acct *account.Account) error {
	for _, kind := range []string{totp.Kind, totp.TrustKind, passkey.Kind, oidc.GrantsKind} {
		if err := n.Records.Swap(r.Context(), acct.RecordKey(kind), func([]byte) ([]byte, error) { return nil, nil }); err != nil {
			return apiError(http.StatusServiceUnavailable, errors.New("the store did not answer; try again"))
		}
	}
	return nil
}

// userOf is a managed user as the list shows it.
func userOf(n *Node, u users.Info) User {
	out := User{Info: u, Factors: []string{}}
	if listed, _ := n.Shared.Sessions(nil, store.AccountID(u.Account.ID), [16]byte{}); len(listed) > 0 {
		newest := slices.MaxFunc(listed, func(a, b store.Entry) int { return a.Started.Compare(b.Started) }).Started.UTC()
		out.LastSignIn = &newest
	}
	// the account's own records, also where a reload gave its name to
	// the Caddyfile (a passkeys record is removed with its last key)
	if n.Records.Get(u.Account.RecordKey(totp.Kind)) != nil {
		out.Factors = append(out.Factors, "totp")
	}
	if n.Records.Get(u.Account.RecordKey(passkey.Kind)) != nil {
		out.Factors = append(out.Factors, "passkey")
	}
	return out
}

// usersNode is the node whose managed users the request's realm has.
func usersNode(r *http.Request) (*Node, error) {
	nodes, err := nodesOf(r)
	if err != nil {
		return nil, err
	}
	i := slices.IndexFunc(nodes, func(n *Node) bool { return n.Users != nil })
	if i < 0 {
		return nil, apiError(http.StatusNotFound, errors.New("the realm has no managed users"))
	}
	return nodes[i], nil
}

// readLinkRequest reads the body of a request that makes a link (an
// invite, a reset), with how long the link works and the origin it
// names, all checked before anything changes.
func readLinkRequest(r *http.Request, n *Node) (NewUser, time.Duration, string, error) {
	var in NewUser
	if err := readJSON(r, &in); err != nil {
		return in, 0, "", err
	}
	valid, err := validOf(in.Valid)
	if err != nil {
		return in, 0, "", err
	}
	base, err := n.linkBase(in.Site)
	return in, valid, base, err
}

// invitePath starts what follows a link's origin: the token is in the
// fragment, which neither access logs nor Referer headers carry.
const invitePath = "/login/invite#"

// linkBase is the origin of a link that carries a token
// (https://<host>/login/invite#<token>): login_url's, or else the site
// asked for, or none (the path alone) when neither is known. It is read
// before anything changes, so that a bad site changes nothing.
func (n *Node) linkBase(site string) (string, error) {
	if u, err := url.Parse(n.LoginURL); err == nil && u.Host != "" {
		return u.Scheme + "://" + u.Host, nil
	}
	if site == "" {
		return "", nil
	}
	u, err := url.Parse(site)
	if err != nil || u.Host == "" || u.Scheme != "https" && u.Scheme != "http" || u.User != nil {
		return "", apiError(http.StatusBadRequest, errors.New("site must be an absolute http or https URL"))
	}
	return u.Scheme + "://" + u.Host, nil
}

// inConfig reports whether a site of the request's realm has a
// Caddyfile user of the name, in any case: sites of one realm may each
// list other users, and a managed account may not take any one's name.
func inConfig(r *http.Request, name string) bool {
	nodes, _ := nodesOf(r)
	return slices.ContainsFunc(nodes, func(n *Node) bool { return n.Accounts.LikeConfigured(name) })
}

// validOf reads how long a link works: a Caddy duration (48h, 7d), the
// default when empty.
func validOf(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := caddy.ParseDuration(s)
	if err != nil || d < time.Minute || d > users.MaxValid {
		return 0, apiError(http.StatusBadRequest, errors.New("valid must be a duration from 1m to 30d (48h, 7d)"))
	}
	return d, nil
}

// readJSON reads a request's JSON body, at most 64 KiB, refusing
// unknown fields.
func readJSON(r *http.Request, v any) error {
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10+1))
	if err != nil || len(body) > 64<<10 {
		return apiError(http.StatusBadRequest, errors.New("the body must be JSON of at most 64 KiB"))
	}
	if len(body) == 0 {
		return nil
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return apiError(http.StatusBadRequest, errors.New("the body must be a JSON object of the endpoint's fields"))
	}
	return nil
}

// userError is a users.Service error as the admin API answers it.
func userError(err error) error {
	var down records.StoreFailed
	switch {
	case errors.Is(err, users.ErrNoUser):
		return apiError(http.StatusNotFound, err)
	case errors.Is(err, users.ErrExists), errors.Is(err, users.ErrInConfig):
		return apiError(http.StatusConflict, err)
	case errors.Is(err, users.ErrUnreadable):
		return apiError(http.StatusConflict, err)
	case errors.As(err, &down):
		return apiError(http.StatusServiceUnavailable, errors.New("the store did not answer; try again"))
	}
	return apiError(http.StatusBadRequest, err)
}
