package admin

import (
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/caddy-miniapp/miniapp/internal/passkey"
	"github.com/caddy-miniapp/miniapp/internal/totp"
	"go.uber.org/zap"
)

// The endpoints of a user's records: the second factor and the
// passkeys, shown and reset by an operator.

// TOTP is the answer of GET /miniapp/totp.
type TOTP struct {
	// Enrolled is whether the user has one-time codes.
	Enrolled bool `json:"enrolled"`
	// RecoveryCodesLeft is how many unused recovery codes the user has.
	RecoveryCodesLeft int `json:"recovery_codes_left"`
}

// RecordReset is the answer of DELETE /miniapp/totp and DELETE
// /miniapp/passkeys?user=.
type RecordReset struct {
	// User is the user whose record was removed.
	User string `json:"user"`
	// Removed is whether the user had the record (one that opens or
	// not).
	Removed bool `json:"removed"`
	// Ended is how many live sessions the user had.
	Ended int `json:"ended"`
}

// recordOf is the user a record's endpoint (GET or DELETE) is asked
// about, with the user's accounts.
func recordOf(w http.ResponseWriter, r *http.Request) (string, []userAccount, error) {
	if r.Method != http.MethodDelete {
		if err := allow(w, r, http.MethodGet); err != nil {
			w.Header().Set("Allow", "GET, DELETE")
			return "", nil, err
		}
	}
	return accountsOf(r)
}

// secondFactor shows (GET) or removes (DELETE: a lost phone) a user's
// second factor; removing it ends the user's sessions too.
func secondFactor(w http.ResponseWriter, r *http.Request) error {
	name, accounts, err := recordOf(w, r)
	if err != nil {
		return err
	}
	if r.Method == http.MethodGet {
		status := accounts[0].n.TOTP.StatusOf(name)
		return writeJSON(w, TOTP{Enrolled: status.TOTP, RecoveryCodesLeft: status.RecoveryCodesLeft})
	}
	out, err := resetRecord(r, name, accounts, totp.Kind)
	if err != nil {
		return err
	}
	accounts[0].n.Logger.Info("second factor removed", zap.String("user", name), zap.Bool("had_factor", out.Removed),
		zap.Int("sessions", out.Ended), zap.String("by", "admin API"), zap.String("remote_addr", r.RemoteAddr))
	return writeJSON(w, out)
}

// passkeys lists (GET) or removes (DELETE: a record that no longer
// opens, or a lost set of keys) a user's passkeys; removing them ends
// the user's sessions too, as the sessions they started are not known
// when the record does not open.
func passkeys(w http.ResponseWriter, r *http.Request) error {
	name, accounts, err := recordOf(w, r)
	if err != nil {
		return err
	}
	if r.Method == http.MethodDelete {
		out, err := resetRecord(r, name, accounts, passkey.Kind)
		if err != nil {
			return err
		}
		accounts[0].n.Logger.Info("passkeys removed", zap.String("user", name), zap.Bool("had_passkeys", out.Removed),
			zap.Int("sessions", out.Ended), zap.String("by", "admin API"), zap.String("remote_addr", r.RemoteAddr))
		return writeJSON(w, out)
	}
	keys, _, err := accounts[0].n.Passkeys.Of(name)
	if err != nil {
		return apiError(http.StatusConflict, errors.New("the user's passkeys record does not open (edited in the store, or sealed with a key no longer configured)"))
	}
	out := make([]passkey.View, len(keys))
	for i, k := range keys {
		out[i] = passkey.ViewOf(k)
	}
	return writeJSON(w, out)
}

// resetRecord removes the user's record of a kind (a second factor, the
// passkeys) whether it opens or not, once per store, and signs the
// user's accounts out everywhere.
func resetRecord(r *http.Request, name string, accounts []userAccount, kind string) (RecordReset, error) {
	out := RecordReset{User: name}
	for i, u := range accounts {
		// the record is the account's in the realm: one per store
		key := u.acct.RecordKey(kind)
		if !slices.ContainsFunc(accounts[:i], func(o userAccount) bool { return o.n.Place == u.n.Place && o.acct.RecordKey(kind) == key }) {
			err := u.n.Records.Swap(r.Context(), key, func(sealed []byte) ([]byte, error) {
				out.Removed = out.Removed || sealed != nil
				return nil, nil
			})
			if err != nil {
				return out, apiError(http.StatusServiceUnavailable, errors.New("the store did not answer; try again"))
			}
		}
		n, err := signOutEverywhere(r, u)
		if err != nil {
			return out, err
		}
		out.Ended += n
	}
	return out, nil
}

// PasskeyDeleted is the answer of DELETE /miniapp/passkeys/<id>.
type PasskeyDeleted struct {
	// User is the user whose passkey it was.
	User string `json:"user"`
	// Passkey is the passkey removed.
	Passkey passkey.View `json:"passkey"`
}

// deletePasskey removes a passkey by its ID, whoever's it is, and ends
// the sessions it started.
func deletePasskey(w http.ResponseWriter, r *http.Request) error {
	if err := allow(w, r, http.MethodDelete); err != nil {
		return err
	}
	id := passkey.ParseID(strings.TrimPrefix(r.URL.Path, "/miniapp/passkeys/"))
	if id == nil {
		return apiError(http.StatusBadRequest, errors.New("the path must end in a passkey ID (base64url)"))
	}
	nodes, err := nodesOf(r)
	if err != nil {
		return err
	}
	for _, n := range nodes {
		user := n.Passkeys.Owner(id)
		if user == "" {
			continue
		}
		removed, err := n.Passkeys.Remove(r.Context(), user, id)
		if err != nil {
			return apiError(http.StatusServiceUnavailable, errors.New("the store did not answer; try again"))
		}
		n.Logger.Info("passkey removed", zap.String("user", user), zap.String("passkey", removed.Name), zap.Int("sessions", len(removed.Sessions)),
			zap.String("by", "admin API"), zap.String("remote_addr", r.RemoteAddr))
		return writeJSON(w, PasskeyDeleted{User: user, Passkey: passkey.ViewOf(removed)})
	}
	return apiError(http.StatusNotFound, errors.New("no such passkey in the realm"))
}
