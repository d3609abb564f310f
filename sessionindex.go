package miniapp

import (
	"encoding/hex"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mileusna/useragent"
)

// Bounds of one account's index: the newest listedSessions sessions are
// listed with their details; older ones still work and up to
// otherSessions of them are counted (with their ID, expiry and counter
// alone); beyond that they are left out of the index.
const (
	listedSessions = 50
	otherSessions  = 1000
)

// sessionEntry is one session in its account's index: what the profile
// page, the admin API and the `caddy miniapp` command show of it.
type sessionEntry struct {
	id   [16]byte
	acct accountID
	// counter is the account's sign-out counter at login: a sign out
	// everywhere above it ends the session.
	counter uint32
	started time.Time
	expires time.Time
	address string
	device  string
}

// sessionIndex holds each account's sessions as the store's feed reports
// logins, logouts and sign-outs everywhere, kept in memory like the
// revocations so that no request reads the store. Its owner's lock
// guards it.
type sessionIndex struct {
	accounts map[accountID]*accountSessions
	// owner finds a session's account by its ID, for a logout or an
	// ending by ID.
	owner map[[16]byte]accountID
	// byHour holds the session IDs by the hour their session expires, so
	// expired sessions go without a scan of every account.
	byHour map[int64][][16]byte
}

// accountSessions are one account's sessions: the newest with their
// details, and the others by ID with their expiry and counter alone.
type accountSessions struct {
	listed []sessionEntry
	others map[[16]byte]sessionEntry
}

func newSessionIndex() *sessionIndex {
	return &sessionIndex{
		accounts: make(map[accountID]*accountSessions),
		owner:    make(map[[16]byte]accountID),
		byHour:   make(map[int64][][16]byte),
	}
}

// add records a login; a session already known is left as it is.
func (x *sessionIndex) add(e sessionEntry) {
	if _, known := x.owner[e.id]; known {
		return
	}
	a := x.accounts[e.acct]
	if a == nil {
		a = new(accountSessions)
		x.accounts[e.acct] = a
	}
	x.owner[e.id] = e.acct
	hour := e.expires.Unix() / 3600
	x.byHour[hour] = append(x.byHour[hour], e.id)
	at, _ := slices.BinarySearchFunc(a.listed, e, newerFirst)
	a.listed = slices.Insert(a.listed, at, e)
	if len(a.listed) > listedSessions {
		oldest := a.listed[listedSessions]
		a.listed = a.listed[:listedSessions]
		if a.others == nil {
			a.others = make(map[[16]byte]sessionEntry)
		}
		if len(a.others) < otherSessions {
			oldest.address, oldest.device = "", ""
			a.others[oldest.id] = oldest
		} else {
			delete(x.owner, oldest.id)
		}
	}
}

// newerFirst orders sessions by start, newest first, then by ID.
func newerFirst(a, b sessionEntry) int {
	if c := b.started.Compare(a.started); c != 0 {
		return c
	}
	return slices.Compare(a.id[:], b.id[:])
}

// find returns an indexed session.
func (x *sessionIndex) find(id [16]byte) (sessionEntry, bool) {
	acct, known := x.owner[id]
	if !known {
		return sessionEntry{}, false
	}
	a := x.accounts[acct]
	if e, other := a.others[id]; other {
		return e, true
	}
	if i := slices.IndexFunc(a.listed, func(e sessionEntry) bool { return e.id == id }); i >= 0 {
		return a.listed[i], true
	}
	return sessionEntry{}, false
}

// remove drops a session that ended.
func (x *sessionIndex) remove(id [16]byte) {
	e, known := x.find(id)
	if !known {
		return
	}
	delete(x.owner, id)
	a := x.accounts[e.acct]
	delete(a.others, id)
	a.listed = slices.DeleteFunc(a.listed, func(e sessionEntry) bool { return e.id == id })
	if len(a.listed) == 0 && len(a.others) == 0 {
		delete(x.accounts, e.acct)
	}
}

// signedOut drops the account's sessions that began below counter.
func (x *sessionIndex) signedOut(acct accountID, counter uint32) {
	a := x.accounts[acct]
	if a == nil {
		return
	}
	for _, e := range slices.Concat(a.listed, slices.Collect(maps.Values(a.others))) {
		if e.counter < counter {
			x.remove(e.id)
		}
	}
}

// expire drops the sessions whose hour of expiry has passed.
func (x *sessionIndex) expire(now time.Time) {
	current := now.Unix() / 3600
	for hour, ids := range x.byHour {
		if hour >= current {
			continue
		}
		for _, id := range ids {
			x.remove(id)
		}
		delete(x.byHour, hour)
	}
}

// list appends the account's live sessions with their details to dst,
// newest first, and returns how many others it has besides the session
// shown.
func (x *sessionIndex) list(dst []sessionEntry, acct accountID, shown [16]byte, now time.Time) ([]sessionEntry, int) {
	a := x.accounts[acct]
	if a == nil {
		return dst, 0
	}
	listed := dst
	for _, e := range a.listed {
		if now.Before(e.expires) {
			listed = append(listed, e)
		}
	}
	others := 0
	for _, e := range a.others {
		if now.Before(e.expires) && e.id != shown {
			others++
		}
	}
	return listed, others
}

// String encodes the entry as one line of text for a store: the ID, the
// account, the counter, the times, the address and the device name,
// which comes last as it holds spaces.
func (e sessionEntry) String() string {
	return strings.Join([]string{
		hex.EncodeToString(e.id[:]), hex.EncodeToString(e.acct[:]), strconv.FormatUint(uint64(e.counter), 10),
		strconv.FormatInt(e.started.Unix(), 10), strconv.FormatInt(e.expires.Unix(), 10), e.address, e.device,
	}, " ")
}

// parseSessionEntry reads an entry written by String.
func parseSessionEntry(s string) (sessionEntry, bool) {
	f := strings.SplitN(s, " ", 7)
	if len(f) != 7 {
		return sessionEntry{}, false
	}
	id, err1 := hex.DecodeString(f[0])
	acct, err2 := hex.DecodeString(f[1])
	counter, err3 := strconv.ParseUint(f[2], 10, 32)
	started, err4 := strconv.ParseInt(f[3], 10, 64)
	expires, err5 := strconv.ParseInt(f[4], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || err4 != nil || err5 != nil || len(id) != 16 || len(acct) != 16 ||
		started < 0 || expires < started || expires > lastTime {
		return sessionEntry{}, false
	}
	if _, err := netip.ParseAddr(f[5]); err != nil {
		f[5] = "" // no address, or not one
	}
	return sessionEntry{
		id: [16]byte(id), acct: accountID(acct), counter: uint32(counter),
		started: time.Unix(started, 0), expires: time.Unix(expires, 0),
		address: f[5], device: deviceLabel(f[6]),
	}, true
}

// lastTime is the last second that JSON can show (9999-12-31T23:59:59Z):
// a store entry past it is not a session.
const lastTime = 253402300799

// Names the device name is made of: only these reach a page, never a
// part of the User-Agent header itself.
var (
	knownBrowsers = []string{
		useragent.Chrome, useragent.Firefox, useragent.Safari, useragent.Edge, useragent.Opera,
		useragent.OperaMini, useragent.OperaTouch, useragent.Vivaldi, useragent.SamsungBrowser,
		useragent.InternetExplorer, useragent.HeadlessChrome, useragent.FacebookApp,
		useragent.InstagramApp, useragent.TiktokApp,
	}
	knownSystems = []string{
		useragent.Windows, useragent.Android, useragent.MacOS, useragent.IOS, useragent.Linux,
		useragent.FreeBSD, useragent.ChromeOS, useragent.WindowsPhone, useragent.BlackBerry,
		useragent.Harmony, "iPhone", "iPad",
	}
)

// unknownDevice names a client whose browser and system are not known.
const unknownDevice = "Unknown device"

// deviceName makes a short device name from a User-Agent header, such as
// "Firefox on Linux" or "Safari on iPhone".
func deviceName(header string) string {
	ua := useragent.Parse(header)
	browser := ua.Name
	if browser == useragent.MobileSafari {
		browser = useragent.Safari
	}
	system := ua.OS
	if ua.Device == "iPhone" || ua.Device == "iPad" {
		system = ua.Device
	}
	return deviceLabel(browser + " on " + system)
}

// deviceLabel keeps a device name made of known names, and turns any
// other text (a header's product token, a forged store entry) into
// unknownDevice.
func deviceLabel(name string) string {
	browser, system, _ := strings.Cut(name, " on ")
	knownBrowser, knownSystem := slices.Contains(knownBrowsers, browser), slices.Contains(knownSystems, system)
	switch {
	case knownBrowser && knownSystem:
		return browser + " on " + system
	case knownBrowser:
		return browser
	case knownSystem:
		return "Browser on " + system
	}
	return unknownDevice
}
