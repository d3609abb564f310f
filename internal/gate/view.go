package gate

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/caddy-miniapp/miniapp/internal/web"
	"github.com/caddy-miniapp/miniapp/store"
	"github.com/mileusna/useragent"
)

// View is a session as the admin API and the profile's JSON show it.
type View struct {
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
	// Via names the provider the user signed in through, if any.
	Via string `json:"via,omitempty"`
}

// ViewOf is the entry as the admin API shows it.
func ViewOf(e store.Entry) View {
	return View{ID: hex.EncodeToString(e.ID[:]), Account: accountLabel(e.Account), Device: e.Device, Address: e.Address,
		Started: e.Started.UTC(), Expires: e.Expires.UTC(), Factors: int(max(e.Factors, 1)), Via: e.Via}
}

// accountLabel is a short tag of an account for the admin API: the same
// for every session of one account, different for two accounts of one
// name on two sites of a realm, and telling nothing of the account's
// ID or password hash.
func accountLabel(id store.AccountID) string {
	sum := sha256.Sum256(append([]byte("miniapp admin account label\x00"), id[:]...))
	return hex.EncodeToString(sum[:4])
}

// ErrSessionID is a session ID that is not 32 hex digits.
var ErrSessionID = errors.New("session must be a session ID of 32 hex digits")

// ParseSessionID reads a session ID as the profile and the admin API
// show it: 32 hex digits.
func ParseSessionID(s string) ([16]byte, error) {
	id, err := hex.DecodeString(s)
	if err != nil || len(id) != 16 {
		return [16]byte{}, ErrSessionID
	}
	return [16]byte(id), nil
}

// FactorText is a session's factors as text (0 counts as 1), made once.
var FactorText = [3]string{"1", "1", "2"}

// Sessions appends the account's sessions for its profile to dst,
// newest first, and returns how many others it has. This session is
// always listed: when the index does not list it (its login not yet
// read from the store, or older than the newest 50), it is shown as the
// client that asks (its address, its browser's name, made only then).
func (g *Gate) Sessions(dst []store.Entry, s *Session, client Client) ([]store.Entry, int) {
	id := store.AccountID(s.Account.ID)
	sessions, others := g.Shared.Sessions(dst, id, s.ID)
	if slices.ContainsFunc(sessions, func(e store.Entry) bool { return e.ID == s.ID }) {
		return sessions, others
	}
	// placed as the index places a login
	current := store.Entry{ID: s.ID, Account: id, Counter: s.Counter, Started: s.Issued, Expires: s.Expires,
		Generation: s.Generation, Factors: s.Factors, Address: client.IP, Device: DeviceName(client.UserAgent)}
	at, _ := slices.BinarySearchFunc(sessions, current, store.NewerFirst)
	return slices.Insert(sessions, at, current), others
}

// AppendJSON appends the profile's sessions array: each session as the
// admin API shows it, plus "current", true for the request's session.
// Built by hand like the rest of the profile's JSON: json.Marshal took
// GET /profile as JSON from 7 to 15 allocations and more than doubled
// its time (BenchmarkRoutes/profile_json).
func AppendJSON(b []byte, sessions []store.Entry, current [16]byte) []byte {
	b = append(b, '[')
	for i, e := range sessions {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"id":"`...)
		b = hex.AppendEncode(b, e.ID[:])
		b = AppendJSONString(append(b, `","device":`...), e.Device)
		b = AppendJSONString(append(b, `,"address":`...), e.Address)
		b = e.Started.UTC().AppendFormat(append(b, `,"started":"`...), web.ISOTime)
		b = e.Expires.UTC().AppendFormat(append(b, `","expires":"`...), web.ISOTime)
		b = strconv.AppendBool(append(b, `","current":`...), e.ID == current)
		b = append(append(b, `,"factors":`...), FactorText[min(max(e.Factors, 1), 2)]...)
		if e.Via != "" {
			b = AppendJSONString(append(b, `,"via":`...), e.Via)
		}
		b = append(b, '}')
	}
	return append(b, ']')
}

// AppendJSONString appends s as a JSON string, escaped as encoding/json
// escapes it (HTML characters and the JavaScript line separators too);
// invalid UTF-8 becomes U+FFFD.
func AppendJSONString(b []byte, s string) []byte {
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

// AppendRows appends the profile page's list of sessions, with a
// sign-out form for each other session, and a line for those not
// listed; label names a session's provider ("via GitHub").
func AppendRows(b []byte, sessions []store.Entry, current [16]byte, others int, label func(provider string) string) []byte {
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
				b = web.AppendText(b, e.Address)
				if e.Via != "" {
					b = web.AppendText(append(b, " · via "...), label(e.Via))
				}
				return b
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

// DeviceName makes a short device name from a User-Agent header, such as
// "Firefox on Linux" or "Safari on iPhone".
func DeviceName(header string) string {
	ua := useragent.Parse(header)
	browser := ua.Name
	if browser == useragent.MobileSafari {
		browser = useragent.Safari
	}
	system := ua.OS
	if ua.Device == "iPhone" || ua.Device == "iPad" {
		system = ua.Device
	}
	return store.DeviceLabel(browser + " on " + system)
}
