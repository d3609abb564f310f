// Package admin is the miniapp's part of Caddy's admin API (the module
// admin.api.miniapp) and its command-line client, `caddy miniapp`: it
// lists and ends sessions and resets second factors and passkeys of the
// users of the running config. It sees each live handler as a Node that
// the handler registers, never the handler itself, and knows nothing of
// routes, cookies or sign-in.
package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/caddy-miniapp/miniapp/internal/account"
	"github.com/caddy-miniapp/miniapp/internal/gate"
	"github.com/caddy-miniapp/miniapp/internal/passkey"
	"github.com/caddy-miniapp/miniapp/internal/records"
	"github.com/caddy-miniapp/miniapp/internal/totp"
	"github.com/caddy-miniapp/miniapp/internal/users"
	"github.com/caddy-miniapp/miniapp/store"
	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
)

// DefaultRealm is the realm of a request that names none.
const DefaultRealm = "miniapp"

// RealmName is what a realm may be called: it names storage folders.
var RealmName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// Node is what the admin API needs of a live handler: its realm's
// accounts, state and records, and where to log and count.
type Node struct {
	// Realm is the handler's realm.
	Realm string
	// Accounts are the handler's accounts; Guest, when set, is the
	// account of a guest by name (<provider>:<id>) where guests may sign
	// in through that provider.
	Accounts *account.Set
	Guest    func(name string) (*account.Account, bool)
	// Shared is the realm's shared state, Place its store's place.
	Shared *store.Realm
	Place  string
	// Records, TOTP and Passkeys are the realm's records and the
	// services over them (passkeys' records exist whether passkeys are
	// on or off).
	Records  *records.Store
	TOTP     *totp.Service
	Passkeys *passkey.Service
	// OpenID is the realm's OpenID Connect provider, nil without one.
	OpenID OpenID
	// Users are the realm's managed users; LoginURL is the handler's
	// login_url, whose host an invite's link names.
	Users    *users.Service
	LoginURL string
	// Logger logs what the admin API did; Logout counts a session ended.
	Logger *zap.Logger
	Logout func()
}

// live holds the nodes of the provisioned handlers, by realm.
var live = struct {
	sync.Mutex
	byRealm map[string][]*Node
}{byRealm: make(map[string][]*Node)}

// Register makes a provisioned handler's node known to the admin API
// until the function it returns is called (at its Cleanup).
func Register(n *Node) (unregister func()) {
	live.Lock()
	defer live.Unlock()
	live.byRealm[n.Realm] = append(live.byRealm[n.Realm], n)
	return func() {
		live.Lock()
		defer live.Unlock()
		live.byRealm[n.Realm] = slices.DeleteFunc(live.byRealm[n.Realm], func(o *Node) bool { return o == n })
		if len(live.byRealm[n.Realm]) == 0 {
			delete(live.byRealm, n.Realm)
		}
	}
}

// API is the module admin.api.miniapp: endpoints of Caddy's admin API,
// under its access rules, that list and end the sessions of the running
// config's users.
//
//	GET    /miniapp/sessions?user=<name>[&realm=<realm>]
//	DELETE /miniapp/sessions/<id>[?realm=<realm>]
//	POST   /miniapp/signout?user=<name>[&realm=<realm>]
//	GET    /miniapp/totp?user=<name>[&realm=<realm>]
//	DELETE /miniapp/totp?user=<name>[&realm=<realm>]
//	GET    /miniapp/passkeys?user=<name>[&realm=<realm>]
//	DELETE /miniapp/passkeys?user=<name>[&realm=<realm>]
//	DELETE /miniapp/passkeys/<id>[?realm=<realm>]
//	POST   /miniapp/users[?realm=<realm>] (and the rest of users.go)
//
// The realm is "miniapp" when not given. A realm that no handler of the
// running config has, or a user it does not have, is a 404.
type API struct{}

// CaddyModule returns the Caddy module information.
func (API) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.miniapp",
		New: func() caddy.Module { return new(API) },
	}
}

// Routes returns the admin endpoints.
func (API) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{
		{Pattern: "/miniapp/sessions", Handler: caddy.AdminHandlerFunc(sessions)},
		{Pattern: "/miniapp/sessions/", Handler: caddy.AdminHandlerFunc(endSession)},
		{Pattern: "/miniapp/signout", Handler: caddy.AdminHandlerFunc(signOut)},
		{Pattern: "/miniapp/totp", Handler: caddy.AdminHandlerFunc(secondFactor)},
		{Pattern: "/miniapp/passkeys", Handler: caddy.AdminHandlerFunc(passkeys)},
		{Pattern: "/miniapp/passkeys/", Handler: caddy.AdminHandlerFunc(deletePasskey)},
		{Pattern: "/miniapp/oidc/grants", Handler: caddy.AdminHandlerFunc(grants)},
		{Pattern: "/miniapp/oidc/keys", Handler: caddy.AdminHandlerFunc(rotateKey)},
		{Pattern: "/miniapp/users", Handler: caddy.AdminHandlerFunc(usersRoot)},
		{Pattern: "/miniapp/users/", Handler: caddy.AdminHandlerFunc(userPath)},
	}
}

// userAccount is one account of a user, with the node that has it (and
// so the list of revocations that holds its sessions).
type userAccount struct {
	n    *Node
	acct *account.Account
}

// nodesOf returns every live node of the request's realm (the site
// blocks of the running config, and during a reload those of the config
// before it), or a 404.
func nodesOf(r *http.Request) ([]*Node, error) {
	realm := r.URL.Query().Get("realm")
	if realm == "" {
		realm = DefaultRealm
	}
	if !RealmName.MatchString(realm) {
		return nil, apiError(http.StatusBadRequest, errors.New("realm must be 1 to 64 letters, digits, '.', '_' or '-'"))
	}
	live.Lock()
	defer live.Unlock()
	nodes := slices.Clone(live.byRealm[realm])
	if len(nodes) == 0 {
		return nil, apiError(http.StatusNotFound, errors.New("no such realm in the running config"))
	}
	return nodes, nil
}

// accountsOf returns the accounts named by the request's user in its
// realm, once per account and list of revocations, or a 400 or 404.
func accountsOf(r *http.Request) (string, []userAccount, error) {
	name := r.URL.Query().Get("user")
	if name == "" {
		return "", nil, apiError(http.StatusBadRequest, errors.New("user is required"))
	}
	if account.CheckName(name) != nil {
		return "", nil, apiError(http.StatusBadRequest, fmt.Errorf("user must be at most %d bytes of text without control characters", account.MaxNameLen))
	}
	nodes, err := nodesOf(r)
	if err != nil {
		return "", nil, err
	}
	var out []userAccount
	for _, n := range nodes {
		acct, ok := n.Accounts.Lookup(name)
		if !ok && n.Guest != nil {
			acct, ok = n.Guest(name)
		}
		// nodes of one realm and store share its state, even where
		// their lifetimes give them two copies of it in memory
		if ok && !slices.ContainsFunc(out, func(u userAccount) bool { return u.acct.ID == acct.ID && u.n.Place == n.Place }) {
			out = append(out, userAccount{n, acct})
		}
	}
	if len(out) == 0 {
		return "", nil, apiError(http.StatusNotFound, errors.New("no such user in the realm"))
	}
	return name, out, nil
}

// sessions lists a user's sessions, newest first.
func sessions(w http.ResponseWriter, r *http.Request) error {
	if err := allow(w, r, http.MethodGet); err != nil {
		return err
	}
	_, accounts, err := accountsOf(r)
	if err != nil {
		return err
	}
	var all []store.Entry
	for _, u := range accounts {
		listed, _ := u.n.Shared.Sessions(nil, store.AccountID(u.acct.ID), [16]byte{})
		all = append(all, listed...)
	}
	slices.SortFunc(all, store.NewerFirst)
	out := make([]gate.View, len(all))
	for i, e := range all {
		out[i] = gate.ViewOf(e)
	}
	return writeJSON(w, out)
}

// endSession ends one session by its ID, as a logout would.
func endSession(w http.ResponseWriter, r *http.Request) error {
	if err := allow(w, r, http.MethodDelete); err != nil {
		return err
	}
	id, err := gate.ParseSessionID(strings.TrimPrefix(r.URL.Path, "/miniapp/sessions/"))
	if err != nil {
		return apiError(http.StatusBadRequest, errors.New("the path must end in a session ID of 32 hex digits"))
	}
	nodes, err := nodesOf(r)
	if err != nil {
		return err
	}
	for _, n := range nodes {
		if e, ok := n.Shared.EndSession(r.Context(), nil, id); ok {
			n.Logout()
			view, user := gate.ViewOf(e), userName(nodes, e.Account)
			loggedOut(nodes, user, id[:])
			n.Logger.Info("session ended", zap.String("user", user), zap.String("session", view.ID),
				zap.String("by", "admin API"), zap.String("remote_addr", r.RemoteAddr))
			return writeJSON(w, view)
		}
	}
	return apiError(http.StatusNotFound, errors.New("no such session in the realm"))
}

// signOut ends every session of a user, as a sign out everywhere would.
func signOut(w http.ResponseWriter, r *http.Request) error {
	if err := allow(w, r, http.MethodPost); err != nil {
		return err
	}
	name, accounts, err := accountsOf(r)
	if err != nil {
		return err
	}
	ended := 0
	for _, u := range accounts {
		n, err := signOutEverywhere(r, u)
		if err != nil {
			return err
		}
		ended += n
		u.n.Logout()
		u.n.Logger.Info("signed out everywhere", zap.String("user", name), zap.Int("sessions", n),
			zap.String("by", "admin API"), zap.String("remote_addr", r.RemoteAddr))
	}
	return writeJSON(w, SignOut{User: name, Ended: ended, Accounts: len(accounts)})
}

// signOutEverywhere ends every session and trusted browser of the
// account and says how many sessions were live.
func signOutEverywhere(r *http.Request, u userAccount) (int, error) {
	acct := store.AccountID(u.acct.ID)
	listed, others := u.n.Shared.Sessions(nil, acct, [16]byte{})
	if !u.n.Shared.SignOutEverywhere(r.Context(), acct) {
		return 0, apiError(http.StatusConflict, errors.New("the user's sign-out counter is at its limit and cannot be raised; see the log"))
	}
	loggedOut([]*Node{u.n}, u.acct.Name, nil)
	// a browser trusted for the second factor is trusted no more
	if err := u.n.TOTP.UntrustAll(r.Context(), u.acct.Name); err != nil {
		return 0, apiError(http.StatusServiceUnavailable, errors.New("the sessions ended; the trusted browsers did not (the store did not answer): try again"))
	}
	return len(listed) + others, nil
}

// SignOut is the answer of POST /miniapp/signout.
type SignOut struct {
	// User is the user signed out everywhere.
	User string `json:"user"`
	// Ended is how many live sessions the user had.
	Ended int `json:"ended"`
	// Accounts is how many accounts of that name the realm has (sites
	// of one realm may each configure a user of the name).
	Accounts int `json:"accounts"`
}

// userName is the name of the nodes' account with the ID: a Caddyfile
// user's, or a managed one's.
func userName(nodes []*Node, id store.AccountID) string {
	for _, n := range nodes {
		if acct, ok := n.Accounts.ByID(account.ID(id)); ok {
			return acct.Name
		}
		if n.Users == nil {
			continue
		}
		for acct := range n.Users.Accounts() {
			if acct.ID == account.ID(id) {
				return acct.Name
			}
		}
	}
	return ""
}

// allow refuses any method but the endpoint's with 405 and Allow.
func allow(w http.ResponseWriter, r *http.Request, method string) error {
	if r.Method == method {
		return nil
	}
	w.Header().Set("Allow", method)
	return apiError(http.StatusMethodNotAllowed, errors.New("method not allowed"))
}

// apiError is an admin API error with its status; Caddy sends it as
// {"error": "..."}.
func apiError(status int, err error) error {
	return caddy.APIError{HTTPStatus: status, Err: err}
}

// writeJSON sends an admin API answer.
func writeJSON(w http.ResponseWriter, v any) error {
	w.Header().Set("Content-Type", "application/json")
	return json.NewEncoder(w).Encode(v)
}

// Interface guard
var _ caddy.AdminRouter = (*API)(nil)
