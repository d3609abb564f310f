package miniapp

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/caddy-miniapp/miniapp/internal/account"
	"github.com/caddy-miniapp/miniapp/store"
	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
)

func init() {
	caddy.RegisterModule(AdminAPI{})
}

// AdminAPI is the module admin.api.miniapp: endpoints of Caddy's admin
// API, under its access rules, that list and end the sessions of the
// running config's users.
//
//	GET    /miniapp/sessions?user=<name>[&realm=<realm>]
//	DELETE /miniapp/sessions/<id>[?realm=<realm>]
//	POST   /miniapp/signout?user=<name>[&realm=<realm>]
//	GET    /miniapp/totp?user=<name>[&realm=<realm>]
//	DELETE /miniapp/totp?user=<name>[&realm=<realm>]
//	GET    /miniapp/passkeys?user=<name>[&realm=<realm>]
//	DELETE /miniapp/passkeys?user=<name>[&realm=<realm>]
//	DELETE /miniapp/passkeys/<id>[?realm=<realm>]
//
// The realm is "miniapp" when not given. A realm that no handler of the
// running config has, or a user it does not have, is a 404.
type AdminAPI struct{}

// CaddyModule returns the Caddy module information.
func (AdminAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.miniapp",
		New: func() caddy.Module { return new(AdminAPI) },
	}
}

// Routes returns the admin endpoints.
func (a *AdminAPI) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{
		{Pattern: "/miniapp/sessions", Handler: caddy.AdminHandlerFunc(a.sessions)},
		{Pattern: "/miniapp/sessions/", Handler: caddy.AdminHandlerFunc(a.endSession)},
		{Pattern: "/miniapp/signout", Handler: caddy.AdminHandlerFunc(a.signOut)},
		{Pattern: "/miniapp/totp", Handler: caddy.AdminHandlerFunc(a.totp)},
		{Pattern: "/miniapp/passkeys", Handler: caddy.AdminHandlerFunc(a.passkeys)},
		{Pattern: "/miniapp/passkeys/", Handler: caddy.AdminHandlerFunc(a.deletePasskey)},
	}
}

// live holds the provisioned handlers by realm, for the admin API.
var live = struct {
	sync.Mutex
	byRealm map[string][]*Handler
}{byRealm: make(map[string][]*Handler)}

// register makes a provisioned handler known to the admin API.
func (h *Handler) register() {
	live.Lock()
	defer live.Unlock()
	live.byRealm[h.Realm] = append(live.byRealm[h.Realm], h)
}

// unregister forgets a handler that is cleaned up.
func (h *Handler) unregister() {
	live.Lock()
	defer live.Unlock()
	live.byRealm[h.Realm] = slices.DeleteFunc(live.byRealm[h.Realm], func(o *Handler) bool { return o == h })
	if len(live.byRealm[h.Realm]) == 0 {
		delete(live.byRealm, h.Realm)
	}
}

// userSessions is one account of a user, with the handler that has it
// (and so the list of revocations that holds its sessions).
type userSessions struct {
	h    *Handler
	acct *account.Account
}

// realmHandlers returns every live handler of the request's realm (the
// site blocks of the running config, and during a reload those of the
// config before it), or a 404.
func realmHandlers(r *http.Request) (string, []*Handler, error) {
	realm := r.URL.Query().Get("realm")
	if realm == "" {
		realm = defaultRealm
	}
	if !realmName.MatchString(realm) {
		return "", nil, apiError(http.StatusBadRequest, errors.New("realm must be 1 to 64 letters, digits, '.', '_' or '-'"))
	}
	live.Lock()
	defer live.Unlock()
	handlers := slices.Clone(live.byRealm[realm])
	if len(handlers) == 0 {
		return "", nil, apiError(http.StatusNotFound, errors.New("no such realm in the running config"))
	}
	return realm, handlers, nil
}

// accountsOf returns the accounts named by the request's user in its
// realm, once per account and list of revocations, or a 400 or 404.
func accountsOf(r *http.Request) (string, []userSessions, error) {
	name := r.URL.Query().Get("user")
	if name == "" {
		return "", nil, apiError(http.StatusBadRequest, errors.New("user is required"))
	}
	if account.CheckName(name) != nil {
		return "", nil, apiError(http.StatusBadRequest, fmt.Errorf("user must be at most %d bytes of text without control characters", account.MaxNameLen))
	}
	_, handlers, err := realmHandlers(r)
	if err != nil {
		return "", nil, err
	}
	var out []userSessions
	for _, h := range handlers {
		acct, ok := h.accounts.Lookup(name)
		// handlers of one realm and store share its state, even where
		// their lifetimes give them two copies of it in memory
		if ok && !slices.ContainsFunc(out, func(u userSessions) bool { return u.acct.ID == acct.ID && u.h.store.Place() == h.store.Place() }) {
			out = append(out, userSessions{h, acct})
		}
	}
	if len(out) == 0 {
		return "", nil, apiError(http.StatusNotFound, errors.New("no such user in the realm"))
	}
	return name, out, nil
}

// sessions lists a user's sessions, newest first.
func (a *AdminAPI) sessions(w http.ResponseWriter, r *http.Request) error {
	if err := allowAdmin(w, r, http.MethodGet); err != nil {
		return err
	}
	_, accounts, err := accountsOf(r)
	if err != nil {
		return err
	}
	var all []store.Entry
	for _, u := range accounts {
		listed, _ := u.h.shared.Sessions(nil, store.AccountID(u.acct.ID), [16]byte{})
		all = append(all, listed...)
	}
	slices.SortFunc(all, store.NewerFirst)
	out := make([]sessionJSON, len(all))
	for i, e := range all {
		out[i] = viewOf(e)
	}
	return writeAdminJSON(w, out)
}

// endSession ends one session by its ID, as a logout would.
func (a *AdminAPI) endSession(w http.ResponseWriter, r *http.Request) error {
	if err := allowAdmin(w, r, http.MethodDelete); err != nil {
		return err
	}
	id, err := parseSessionID(strings.TrimPrefix(r.URL.Path, "/miniapp/sessions/"))
	if err != nil {
		return apiError(http.StatusBadRequest, errors.New("the path must end in a session ID of 32 hex digits"))
	}
	_, handlers, err := realmHandlers(r)
	if err != nil {
		return err
	}
	for _, h := range handlers {
		if e, ok := h.shared.EndSession(r.Context(), nil, id); ok {
			h.count(metrics.logouts)
			h.logger.Info("session ended", zap.String("user", userName(handlers, e.Account)), zap.String("session", viewOf(e).ID),
				zap.String("by", "admin API"), zap.String("remote_addr", r.RemoteAddr))
			return writeAdminJSON(w, viewOf(e))
		}
	}
	return apiError(http.StatusNotFound, errors.New("no such session in the realm"))
}

// signOut ends every session of a user, as a sign out everywhere would.
func (a *AdminAPI) signOut(w http.ResponseWriter, r *http.Request) error {
	if err := allowAdmin(w, r, http.MethodPost); err != nil {
		return err
	}
	name, accounts, err := accountsOf(r)
	if err != nil {
		return err
	}
	ended := 0
	for _, u := range accounts {
		acct := store.AccountID(u.acct.ID)
		listed, others := u.h.shared.Sessions(nil, acct, [16]byte{})
		ended += len(listed) + others
		if !u.h.shared.SignOutEverywhere(r.Context(), acct) {
			return apiError(http.StatusConflict, errors.New("the user's sign-out counter is at its limit and cannot be raised; see the log"))
		}
		u.h.count(metrics.logouts)
		u.h.logger.Info("signed out everywhere", zap.String("user", name), zap.Int("sessions", len(listed)+others),
			zap.String("by", "admin API"), zap.String("remote_addr", r.RemoteAddr))
	}
	return writeAdminJSON(w, signOutJSON{User: name, Ended: ended, Accounts: len(accounts)})
}

// signOutJSON is the answer of POST /miniapp/signout.
type signOutJSON struct {
	// User is the user signed out everywhere.
	User string `json:"user"`
	// Ended is how many live sessions the user had.
	Ended int `json:"ended"`
	// Accounts is how many accounts of that name the realm has (sites
	// of one realm may each configure a user of the name).
	Accounts int `json:"accounts"`
}

// totpJSON is the answer of GET /miniapp/totp.
type totpJSON struct {
	// Enrolled is whether the user has one-time codes.
	Enrolled bool `json:"enrolled"`
	// RecoveryCodesLeft is how many unused recovery codes the user has.
	RecoveryCodesLeft int `json:"recovery_codes_left"`
}

// recordResetJSON is the answer of DELETE /miniapp/totp and DELETE
// /miniapp/passkeys?user=.
type recordResetJSON struct {
	// User is the user whose record was removed.
	User string `json:"user"`
	// Removed is whether the user had the record (one that opens or
	// not).
	Removed bool `json:"removed"`
	// Ended is how many live sessions the user had.
	Ended int `json:"ended"`
}

// totp shows (GET) or removes (DELETE: a lost phone) a user's second
// factor; removing it ends the user's sessions too.
func (a *AdminAPI) totp(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodDelete {
		if err := allowAdmin(w, r, http.MethodGet); err != nil {
			w.Header().Set("Allow", "GET, DELETE")
			return err
		}
	}
	name, accounts, err := accountsOf(r)
	if err != nil {
		return err
	}
	if r.Method == http.MethodGet {
		status := accounts[0].h.statusOf(name)
		return writeAdminJSON(w, totpJSON{Enrolled: status.TOTP, RecoveryCodesLeft: status.RecoveryCodesLeft})
	}
	out, err := resetRecord(r, name, accounts, factorKey(name))
	if err != nil {
		return err
	}
	accounts[0].h.logger.Info("second factor removed", zap.String("user", name), zap.Bool("had_factor", out.Removed),
		zap.Int("sessions", out.Ended), zap.String("by", "admin API"), zap.String("remote_addr", r.RemoteAddr))
	return writeAdminJSON(w, out)
}

// passkeys lists (GET) or removes (DELETE: a record that no longer
// opens, or a lost set of keys) a user's passkeys; removing them ends the
// user's sessions too, as the sessions they started are not known when
// the record does not open.
func (a *AdminAPI) passkeys(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodDelete {
		if err := allowAdmin(w, r, http.MethodGet); err != nil {
			w.Header().Set("Allow", "GET, DELETE")
			return err
		}
	}
	name, accounts, err := accountsOf(r)
	if err != nil {
		return err
	}
	if r.Method == http.MethodDelete {
		return resetPasskeys(w, r, name, accounts)
	}
	keys, _, err := accounts[0].h.passkeysOf(name)
	if err != nil {
		return apiError(http.StatusConflict, errors.New("the user's passkeys record does not open (edited in the store, or sealed with a key no longer configured)"))
	}
	out := make([]passkeyJSON, len(keys))
	for i, k := range keys {
		out[i] = viewOfPasskey(k)
	}
	return writeAdminJSON(w, out)
}

// resetPasskeys removes the user's passkeys record whether it opens or
// not, and signs the user out everywhere.
func resetPasskeys(w http.ResponseWriter, r *http.Request, name string, accounts []userSessions) error {
	out, err := resetRecord(r, name, accounts, passkeysKey(name))
	if err != nil {
		return err
	}
	accounts[0].h.logger.Info("passkeys removed", zap.String("user", name), zap.Bool("had_passkeys", out.Removed),
		zap.Int("sessions", out.Ended), zap.String("by", "admin API"), zap.String("remote_addr", r.RemoteAddr))
	return writeAdminJSON(w, out)
}

// resetRecord removes the user's record named key (a second factor, the
// passkeys) whether it opens or not, once per store, and signs the
// user's accounts out everywhere.
func resetRecord(r *http.Request, name string, accounts []userSessions, key string) (recordResetJSON, error) {
	out := recordResetJSON{User: name}
	for i, u := range accounts {
		// the record is the realm's and the name's: one per store
		if !slices.ContainsFunc(accounts[:i], func(o userSessions) bool { return o.h.store.Place() == u.h.store.Place() }) {
			err := u.h.records.Swap(r.Context(), key, func(sealed []byte) ([]byte, error) {
				out.Removed = out.Removed || sealed != nil
				return nil, nil
			})
			if err != nil {
				return out, apiError(http.StatusServiceUnavailable, errors.New("the store did not answer; try again"))
			}
		}
		acct := store.AccountID(u.acct.ID)
		listed, others := u.h.shared.Sessions(nil, acct, [16]byte{})
		out.Ended += len(listed) + others
		if !u.h.shared.SignOutEverywhere(r.Context(), acct) {
			return out, apiError(http.StatusConflict, errors.New("the user's sign-out counter is at its limit and cannot be raised; see the log"))
		}
	}
	return out, nil
}

// deletePasskey removes a passkey by its ID, whoever's it is, and ends
// the sessions it started.
func (a *AdminAPI) deletePasskey(w http.ResponseWriter, r *http.Request) error {
	if err := allowAdmin(w, r, http.MethodDelete); err != nil {
		return err
	}
	id, err := parsePasskeyID(strings.TrimPrefix(r.URL.Path, "/miniapp/passkeys/"))
	if err != nil {
		return apiError(http.StatusBadRequest, errors.New("the path must end in a passkey ID (base64url)"))
	}
	_, handlers, err := realmHandlers(r)
	if err != nil {
		return err
	}
	for _, h := range handlers {
		user := h.passkeyOwner(id)
		if user == "" {
			continue
		}
		removed, err := h.removePasskey(r, user, id)
		if err != nil {
			return apiError(http.StatusServiceUnavailable, errors.New("the store did not answer; try again"))
		}
		h.logger.Info("passkey removed", zap.String("user", user), zap.String("passkey", removed.Name), zap.Int("sessions", len(removed.Sessions)),
			zap.String("by", "admin API"), zap.String("remote_addr", r.RemoteAddr))
		return writeAdminJSON(w, passkeyDeletedJSON{User: user, Passkey: viewOfPasskey(removed)})
	}
	return apiError(http.StatusNotFound, errors.New("no such passkey in the realm"))
}

// passkeyDeletedJSON is the answer of DELETE /miniapp/passkeys/<id>.
type passkeyDeletedJSON struct {
	// User is the user whose passkey it was.
	User string `json:"user"`
	// Passkey is the passkey removed.
	Passkey passkeyJSON `json:"passkey"`
}

// userName is the name of the handlers' account with the ID.
func userName(handlers []*Handler, id store.AccountID) string {
	for _, h := range handlers {
		if acct, ok := h.accounts.ByID(account.ID(id)); ok {
			return acct.Name
		}
	}
	return ""
}

// allowAdmin refuses any method but the endpoint's with 405 and Allow.
func allowAdmin(w http.ResponseWriter, r *http.Request, method string) error {
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

// writeAdminJSON sends an admin API answer.
func writeAdminJSON(w http.ResponseWriter, v any) error {
	w.Header().Set("Content-Type", "application/json")
	return json.NewEncoder(w).Encode(v)
}

// Interface guard
var _ caddy.AdminRouter = (*AdminAPI)(nil)
