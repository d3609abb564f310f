package miniapp

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/caddy-miniapp/miniapp/internal/account"
	"github.com/caddy-miniapp/miniapp/internal/web"
	"github.com/caddy-miniapp/miniapp/store"
	"go.uber.org/zap"
)

// profile shows the signed-in user, the session's times and the
// account's sessions.
func (h *Handler) profile(w http.ResponseWriter, r *http.Request, f web.Format, sess *signedIn) error {
	if err := web.Allow(w, r, "GET, HEAD", http.MethodGet, http.MethodHead); err != nil {
		return err
	}
	if sess == nil {
		return h.signInFirst(w, r, f, nil)
	}
	w.Header().Set("Cache-Control", "no-store")
	// most accounts have a few sessions: their copy stays on the stack
	var few [4]store.Entry
	sessions, others := h.sessionsOf(few[:0], r, sess)
	if f == web.JSON {
		// built by hand: this is the hot JSON path, and the name is
		// JSON-encoded once at load time
		web.WriteBuilt(w, r, http.StatusOK, web.AppJSON, func(body []byte) []byte {
			body = append(append(append(body, `{"username":`...), sess.acct.JSONName...), `,"issued":"`...)
			body = sess.Issued.UTC().AppendFormat(body, web.ISOTime)
			body = append(body, `","expires":"`...)
			body = sess.Expires.UTC().AppendFormat(body, web.ISOTime)
			body = appendProfileSessions(append(body, `","sessions":`...), sessions, sess.ID)
			body = strconv.AppendInt(append(body, `,"other_sessions":`...), int64(others), 10)
			body = append(append(append(body, `,"factors":`...), factorText[min(sess.Factors, 2)]...), `,"second_factor":`...)
			body = appendFactorStatus(body, h.statusOf(sess.User))
			if h.passkeysOn() {
				body = appendPasskeys(append(body, `,"passkeys":`...), h.profilePasskeys(sess))
			}
			return append(body, '}')
		})
		return nil
	}
	page, keys, stepUp := web.ProfilePageNoPasskeys, []account.Passkey(nil), stepUpNone
	if h.passkeysOn() {
		page, keys, stepUp = web.ProfilePage, h.profilePasskeys(sess), h.stepUpOf(sess)
	}
	issued, expires := sess.Issued.UTC(), sess.Expires.UTC()
	web.WriteBuilt(w, r, http.StatusOK, web.TextHTML, func(body []byte) []byte {
		return page.AppendPage(body, func(b []byte, field int) []byte {
			switch field {
			case web.ProfileUser:
				return web.AppendText(b, sess.User)
			case web.ProfileIssuedISO:
				return issued.AppendFormat(b, web.ISOTime)
			case web.ProfileIssuedText:
				return issued.AppendFormat(b, web.TextTime)
			case web.ProfileExpiresISO:
				return expires.AppendFormat(b, web.ISOTime)
			case web.ProfileExpiresText:
				return expires.AppendFormat(b, web.TextTime)
			case web.ProfileSessions:
				return appendSessionRows(b, sessions, sess.ID, others)
			case web.ProfileFactor:
				return appendFactorLine(b, h.statusOf(sess.User))
			case web.ProfileStepUp:
				return appendStepUpField(b, stepUp, "passkey-step-up")
			default:
				return appendPasskeyRows(b, keys, stepUp)
			}
		})
	})
	return nil
}

// profilePasskeys are the passkeys the profile lists: the user's that
// belong to the account as it is configured now.
func (h *Handler) profilePasskeys(sess *signedIn) []account.Passkey {
	keys, _, _ := h.passkeysOf(sess.User)
	return slices.DeleteFunc(keys, func(k account.Passkey) bool { return k.Account != sess.acct.ID.Tag() })
}

// appendPasskeys appends the passkeys as the profile's JSON lists them.
func appendPasskeys(b []byte, keys []account.Passkey) []byte {
	if len(keys) == 0 {
		return append(b, "[]"...)
	}
	views := make([]passkeyJSON, len(keys))
	for i, k := range keys {
		views[i] = viewOfPasskey(k)
	}
	list, _ := json.Marshal(views) // plain values: never fails
	return append(b, list...)
}

// appendPasskeyRows appends the profile page's list of passkeys, each
// with its rename and delete forms, the latter with the step-up field.
func appendPasskeyRows(b []byte, keys []account.Passkey, stepUp stepUp) []byte {
	if len(keys) == 0 {
		return append(b, `<li class="meta">No passkeys yet.</li>`+"\n"...)
	}
	for _, k := range keys {
		v := viewOfPasskey(k)
		b = web.PasskeyRow.AppendPage(b, func(b []byte, field int) []byte {
			switch field {
			case web.RowName:
				return web.AppendText(b, k.Name)
			case web.RowDetail:
				if v.LastUsed == nil {
					return append(b, "never"...)
				}
				return v.LastUsed.AppendFormat(b, web.TextTime)
			case web.RowTimeISO:
				return v.Created.AppendFormat(b, web.ISOTime)
			case web.RowTimeText:
				return v.Created.AppendFormat(b, web.TextTime)
			case web.RowStepUp:
				return appendStepUpField(b, stepUp, "delete-"+v.ID)
			default:
				return web.AppendText(b, v.ID)
			}
		})
	}
	return b
}

// appendFactorStatus appends the second factor's state as JSON.
func appendFactorStatus(b []byte, s factorStatus) []byte {
	b = strconv.AppendBool(append(b, `{"totp":`...), s.TOTP)
	return append(strconv.AppendInt(append(b, `,"recovery_codes_left":`...), int64(s.RecoveryCodesLeft), 10), '}')
}

// appendFactorLine appends the second factor's state as the profile page
// says it.
func appendFactorLine(b []byte, s factorStatus) []byte {
	if !s.TOTP {
		return append(b, "Off"...)
	}
	return strconv.AppendInt(append(b, "On · recovery codes left: "...), int64(s.RecoveryCodesLeft), 10)
}

// sessionJSON is a session as the admin API and the profile's JSON show
// it.
type sessionJSON struct {
	// ID is the session ID that the admin API and `caddy miniapp revoke`
	// take.
	ID string `json:"id"`
	// Account tags the account the session belongs to (the admin API's
	// list only): sites of one realm may each have a user of one name.
	Account string `json:"account,omitempty"`
	// Device is a short name of the browser and system, such as "Firefox
	// on Linux".
	Device string `json:"device"`
	// Address is the client address at login.
	Address string `json:"address"`
	// Started is when the user signed in.
	Started time.Time `json:"started"`
	// Expires is when the session ends at the latest.
	Expires time.Time `json:"expires"`
	// Factors is how the session began: 1 with a password alone, 2 with
	// a second factor too.
	Factors int `json:"factors"`
}

// viewOf is the entry as the admin API shows it.
func viewOf(e store.Entry) sessionJSON {
	return sessionJSON{ID: hex.EncodeToString(e.ID[:]), Account: accountLabel(e.Account), Device: e.Device, Address: e.Address,
		Started: e.Started.UTC(), Expires: e.Expires.UTC(), Factors: int(max(e.Factors, 1))}
}

// accountLabel is a short tag of an account for the admin API: the same
// for every session of one account, different for two accounts of one
// name on two sites of a realm, and telling nothing of the account's
// ID or password hash.
func accountLabel(id store.AccountID) string {
	sum := sha256.Sum256(append([]byte("miniapp admin account label\x00"), id[:]...))
	return hex.EncodeToString(sum[:4])
}

// appendProfileSessions appends the profile's sessions array: each
// session as the admin API shows it, plus "current", true for the
// request's session. Built by hand like the rest of the profile's JSON:
// json.Marshal took GET /profile as JSON from 7 to 15 allocations and
// more than doubled its time (BenchmarkRoutes/profile_json).
func appendProfileSessions(b []byte, sessions []store.Entry, current [16]byte) []byte {
	b = append(b, '[')
	for i, e := range sessions {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"id":"`...)
		b = hex.AppendEncode(b, e.ID[:])
		b = appendJSONString(append(b, `","device":`...), e.Device)
		b = appendJSONString(append(b, `,"address":`...), e.Address)
		b = e.Started.UTC().AppendFormat(append(b, `,"started":"`...), web.ISOTime)
		b = e.Expires.UTC().AppendFormat(append(b, `","expires":"`...), web.ISOTime)
		b = strconv.AppendBool(append(b, `","current":`...), e.ID == current)
		b = append(append(append(b, `,"factors":`...), factorText[min(max(e.Factors, 1), 2)]...), '}')
	}
	return append(b, ']')
}

// appendJSONString appends s as a JSON string, escaped as encoding/json
// escapes it (HTML characters and the JavaScript line separators too);
// invalid UTF-8 becomes U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	const digits = "0123456789abcdef"
	b = append(b, '"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b = append(b, '\\', byte(r))
		case r < 0x20 || r == '<' || r == '>' || r == '&' || r == '\u2028' || r == '\u2029':
			b = append(b, '\\', 'u', digits[r>>12&0xf], digits[r>>8&0xf], digits[r>>4&0xf], digits[r&0xf])
		default:
			b = utf8.AppendRune(b, r)
		}
	}
	return append(b, '"')
}

// sessionsOf appends the account's sessions for its profile to dst,
// newest first, and returns how many others it has. This session is
// always listed: when the index does not list it (its login not yet read
// from the store, or older than the newest 50), it is shown from its
// cookie.
func (h *Handler) sessionsOf(dst []store.Entry, r *http.Request, sess *signedIn) ([]store.Entry, int) {
	sessions, others := h.shared.Sessions(dst, store.AccountID(sess.acct.ID), sess.ID)
	if slices.ContainsFunc(sessions, func(e store.Entry) bool { return e.ID == sess.ID }) {
		return sessions, others
	}
	// placed as the index places a login
	current := sess.entry(web.ClientIP(r), store.DeviceName(r.UserAgent()))
	at, _ := slices.BinarySearchFunc(sessions, current, store.NewerFirst)
	return slices.Insert(sessions, at, current), others
}

// appendSessionRows appends the profile page's list of sessions, with a
// sign-out form for each other session, and a line for those not listed.
func appendSessionRows(b []byte, sessions []store.Entry, current [16]byte, others int) []byte {
	for _, e := range sessions {
		row, started := web.OtherSessionRow, e.Started.UTC()
		if e.ID == current {
			row = web.ThisSessionRow
		}
		b = row.AppendPage(b, func(b []byte, field int) []byte {
			switch field {
			case web.RowName:
				return web.AppendText(b, e.Device)
			case web.RowDetail:
				return web.AppendText(b, e.Address)
			case web.RowTimeISO:
				return started.AppendFormat(b, web.ISOTime)
			case web.RowTimeText:
				return started.AppendFormat(b, web.TextTime)
			default:
				return hex.AppendEncode(b, e.ID[:])
			}
		})
	}
	if others > 0 {
		b = web.OtherSessionsRow.AppendPage(b, func(b []byte, _ int) []byte { return strconv.AppendInt(b, int64(others), 10) })
	}
	return b
}

// parseSessionID reads a session ID as the profile and the admin API
// show it: 32 hex digits.
func parseSessionID(s string) ([16]byte, error) {
	id, err := hex.DecodeString(s)
	if err != nil || len(id) != 16 {
		return [16]byte{}, web.Reject(http.StatusBadRequest, "session must be a session ID of 32 hex digits")
	}
	return [16]byte(id), nil
}

// endOther ends another session of the signed-in user, chosen on the
// profile page, and goes back to the profile.
func (h *Handler) endOther(w http.ResponseWriter, r *http.Request, f web.Format, sess *signedIn, id [16]byte) error {
	if sess == nil {
		return h.signInFirst(w, r, f, nil)
	}
	acct := store.AccountID(sess.acct.ID)
	if _, ok := h.shared.EndSession(r.Context(), &acct, id); !ok {
		return web.Reject(http.StatusNotFound, "no such session of this user")
	}
	h.count(metrics.logouts)
	h.logger.Info("session ended", zap.String("user", sess.User), zap.String("session", hex.EncodeToString(id[:])),
		zap.String("by", "profile page"), zap.String("client_ip", web.ClientIP(r)))
	web.Redirect(w, r, "/profile")
	return nil
}
