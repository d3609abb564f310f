package miniapp

import (
	"encoding/hex"
	"net/http"
	"strconv"
	"time"

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

// profileSession is a session in the profile's JSON: current is true for
// the session of the request.
type profileSession struct {
	sessionJSON
	Current bool `json:"current"`
}

// view is the entry as the admin API and the profile show it.
func (e sessionEntry) view() sessionJSON {
	return sessionJSON{ID: hex.EncodeToString(e.id[:]), Device: e.device, Address: e.address, Started: e.started.UTC(), Expires: e.expires.UTC()}
}

// profileSessions is the profile's sessions array.
func profileSessions(sessions []sessionEntry, current [16]byte) []profileSession {
	out := make([]profileSession, len(sessions))
	for i, e := range sessions {
		out[i] = profileSession{e.view(), e.id == current}
	}
	return out
}

// entry is the index entry of a session that begins now.
func (s *session) entry(address, device string) sessionEntry {
	return sessionEntry{id: s.ID, acct: s.acct.id, counter: s.Counter, started: s.Issued, expires: s.Expires, address: address, device: device}
}

// sessionsOf returns the account's sessions for its profile, newest
// first, and how many others it has. A session not in the index (its
// login not yet written to the store) is shown from its cookie.
func (h *Handler) sessionsOf(r *http.Request, sess *session) ([]sessionEntry, int) {
	sessions, others := h.revoked.listSessions(sess.acct.id)
	for _, e := range sessions {
		if e.id == sess.ID {
			return sessions, others
		}
	}
	current := sess.entry(clientIP(r), deviceName(r.UserAgent()))
	at := 0
	for at < len(sessions) && newerFirst(sessions[at], current) < 0 {
		at++
	}
	return append(sessions[:at:at], append([]sessionEntry{current}, sessions[at:]...)...), others
}

// sessionRows is the profile page's list of sessions, with a sign-out
// form for each other session, and a line for those not listed.
func sessionRows(sessions []sessionEntry, current [16]byte, others int) string {
	var rows []byte
	for _, e := range sessions {
		started := e.started.UTC()
		if e.id == current {
			rows = append(rows, thisSessionRow.fill(e.device, e.address, started.Format(isoTime), started.Format(textTime))...)
		} else {
			rows = append(rows, otherSessionRow.fill(e.device, e.address, started.Format(isoTime), started.Format(textTime), hex.EncodeToString(e.id[:]))...)
		}
	}
	if others > 0 {
		rows = append(rows, otherSessionsRow.fill(strconv.Itoa(others))...)
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
func (h *Handler) endOther(w http.ResponseWriter, r *http.Request, f format, sess *session, other string) error {
	if sess == nil {
		return h.signInFirst(w, r, f, nil)
	}
	id, err := parseSessionID(other)
	if err != nil {
		return err
	}
	if _, ok := h.revoked.endSession(r.Context(), &sess.acct.id, id); !ok {
		return reject(http.StatusNotFound, "no such session of this user")
	}
	metrics.logouts.Inc()
	h.logger.Info("session ended", zap.String("user", sess.User), zap.String("session", other),
		zap.String("by", "profile page"), zap.String("client_ip", clientIP(r)))
	redirect(w, r, "/profile")
	return nil
}
