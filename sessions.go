package miniapp

import (
	"encoding/hex"
	"net/http"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"go.uber.org/zap"
)

// sessionJSON is a session as the admin API and the profile's JSON show
// it.
type sessionJSON struct {
	// ID is the session ID that the admin API and `caddy miniapp revoke`
	// take.
	ID string `json:"id"`
	// Device is a short name of the browser and system, such as "Firefox
	// on Linux".
	Device string `json:"device"`
	// Address is the client address at login.
	Address string `json:"address"`
	// Started is when the user signed in.
	Started time.Time `json:"started"`
	// Expires is when the session ends at the latest.
	Expires time.Time `json:"expires"`
}

// view is the entry as the admin API shows it.
func (e sessionEntry) view() sessionJSON {
	return sessionJSON{ID: hex.EncodeToString(e.id[:]), Device: e.device, Address: e.address, Started: e.started.UTC(), Expires: e.expires.UTC()}
}

// appendProfileSessions appends the profile's sessions array: each
// session as the admin API shows it, plus "current", true for the
// request's session. Built by hand like the rest of the profile's JSON:
// json.Marshal took GET /profile as JSON from 7 to 15 allocations and
// more than doubled its time (BenchmarkRoutes/profile_json).
func appendProfileSessions(b []byte, sessions []sessionEntry, current [16]byte) []byte {
	b = append(b, '[')
	for i, e := range sessions {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"id":"`...)
		b = hex.AppendEncode(b, e.id[:])
		b = appendJSONString(append(b, `","device":`...), e.device)
		b = appendJSONString(append(b, `,"address":`...), e.address)
		b = e.started.UTC().AppendFormat(append(b, `,"started":"`...), isoTime)
		b = e.expires.UTC().AppendFormat(append(b, `","expires":"`...), isoTime)
		b = strconv.AppendBool(append(b, `","current":`...), e.id == current)
		b = append(b, '}')
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

// entry is the index entry of a session that begins now.
func (s *session) entry(address, device string) sessionEntry {
	return sessionEntry{id: s.ID, acct: s.acct.id, counter: s.Counter, started: s.Issued, expires: s.Expires, address: address, device: device}
}

// sessionsOf appends the account's sessions for its profile to dst,
// newest first, and returns how many others it has. This session is
// always listed: when the index does not list it (its login not yet read
// from the store, or older than the newest 50), it is shown from its
// cookie.
func (h *Handler) sessionsOf(dst []sessionEntry, r *http.Request, sess *session) ([]sessionEntry, int) {
	sessions, others := h.revoked.listSessions(dst, sess.acct.id, sess.ID)
	if slices.ContainsFunc(sessions, func(e sessionEntry) bool { return e.id == sess.ID }) {
		return sessions, others
	}
	// placed as the index places a login
	current := sess.entry(clientIP(r), deviceName(r.UserAgent()))
	at, _ := slices.BinarySearchFunc(sessions, current, newerFirst)
	return slices.Insert(sessions, at, current), others
}

// sessionRows is the profile page's list of sessions, with a sign-out
// form for each other session, and a line for those not listed.
func sessionRows(sessions []sessionEntry, current [16]byte, others int) string {
	rows := make([]byte, 0, 640*len(sessions))
	for _, e := range sessions {
		started := e.started.UTC()
		if e.id == current {
			rows = thisSessionRow.appendFill(rows, e.device, e.address, started.Format(isoTime), started.Format(textTime))
		} else {
			rows = otherSessionRow.appendFill(rows, e.device, e.address, started.Format(isoTime), started.Format(textTime), hex.EncodeToString(e.id[:]))
		}
	}
	if others > 0 {
		rows = otherSessionsRow.appendFill(rows, strconv.Itoa(others))
	}
	return string(rows)
}

// parseSessionID reads a session ID as the profile and the admin API
// show it: 32 hex digits.
func parseSessionID(s string) ([16]byte, error) {
	id, err := hex.DecodeString(s)
	if err != nil || len(id) != 16 {
		return [16]byte{}, reject(http.StatusBadRequest, "session must be a session ID of 32 hex digits")
	}
	return [16]byte(id), nil
}

// endOther ends another session of the signed-in user, chosen on the
// profile page, and goes back to the profile.
func (h *Handler) endOther(w http.ResponseWriter, r *http.Request, f format, sess *session, id [16]byte) error {
	if sess == nil {
		return h.signInFirst(w, r, f, nil)
	}
	if _, ok := h.revoked.endSession(r.Context(), &sess.acct.id, id); !ok {
		return reject(http.StatusNotFound, "no such session of this user")
	}
	metrics.logouts.Inc()
	h.logger.Info("session ended", zap.String("user", sess.User), zap.String("session", hex.EncodeToString(id[:])),
		zap.String("by", "profile page"), zap.String("client_ip", clientIP(r)))
	redirect(w, r, "/profile")
	return nil
}
