package store

import (
	"encoding/hex"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mileusna/useragent"
)

// Entry is one session in its account's index: what the profile
// page, the admin API and the `caddy miniapp` command show of it.
type Entry struct {
	// ID is the session's ID.
	ID [16]byte
	// Account is the account the session belongs to.
	Account AccountID
	// Counter is the account's sign-out counter at login: a sign out
	// everywhere above it ends the session.
	Counter uint32
	// Started is when the user signed in; Expires when the session ends
	// at the latest.
	Started, Expires time.Time
	// Generation is the store's generation the session was issued under.
	Generation uint64
	// Factors is how the session began: 1 with a password alone, 2 with
	// a second factor too.
	Factors uint8
	// Address is the client address at login.
	Address string
	// Device is a short name of the browser and system, made of known
	// names only.
	Device string
	// Via names the provider the user signed in through (sign_in_with),
	// or is empty.
	Via string
}

// String encodes the entry as one line of text for a store: the ID, the
// account, the counter, the times, the generation, factors and provider
// ("<generation>:<factors>[:<provider>]"; an entry written before
// factors were recorded has the generation alone, and one factor), the
// address and the device name, which comes last as it holds spaces.
func (e Entry) String() string {
	sign := strconv.FormatUint(e.Generation, 10) + ":" + strconv.Itoa(int(max(e.Factors, 1)))
	if e.Via != "" {
		sign += ":" + e.Via
	}
	return strings.Join([]string{
		hex.EncodeToString(e.ID[:]), hex.EncodeToString(e.Account[:]), strconv.FormatUint(uint64(e.Counter), 10),
		strconv.FormatInt(e.Started.Unix(), 10), strconv.FormatInt(e.Expires.Unix(), 10), sign, e.Address, e.Device,
	}, " ")
}

// viaForm is what a provider's name in an entry may be: as a
// sign_in_with block names it.
var viaForm = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,31}$`)

// ParseEntry reads an entry written by String.
func ParseEntry(s string) (Entry, bool) {
	f := strings.SplitN(s, " ", 8)
	if len(f) != 8 {
		return Entry{}, false
	}
	gen, factors, found := strings.Cut(f[5], ":")
	factors, via, _ := strings.Cut(factors, ":")
	generation, err := strconv.ParseUint(gen, 10, 64)
	if err != nil || (found && factors != "1" && factors != "2") {
		return Entry{}, false
	}
	if !viaForm.MatchString(via) {
		via = ""
	}
	f = slices.Delete(f, 5, 6)
	id, err1 := hex.DecodeString(f[0])
	acct, err2 := hex.DecodeString(f[1])
	counter, ok := ParseCounter(f[2])
	started, err4 := strconv.ParseInt(f[3], 10, 64)
	expires, ok5 := ParseTime(f[4])
	if err1 != nil || err2 != nil || !ok || err4 != nil || !ok5 || len(id) != 16 || len(acct) != 16 ||
		started < 0 || expires < started {
		return Entry{}, false
	}
	// an address in its own canonical form, without a zone: any other
	// text would reach a page or a terminal
	if addr, err := netip.ParseAddr(f[5]); err != nil || addr.Zone() != "" || addr.String() != f[5] {
		f[5] = ""
	}
	return Entry{
		ID: [16]byte(id), Account: AccountID(acct), Counter: counter,
		Started: time.Unix(started, 0), Expires: time.Unix(expires, 0), Generation: generation,
		Factors: 1 + uint8(strings.Count(factors, "2")), Address: f[5], Device: DeviceLabel(f[6]), Via: via,
	}, true
}

// lastTime is the last second that JSON can show (9999-12-31T23:59:59Z):
// a store entry past it is not a session.
const lastTime = 253402300799

// MaxCounter is the highest sign-out counter: a billion sign-outs of one
// account. A store entry with a higher one is refused like a forged
// cookie, so a counter can never wrap around; a stored counter at it
// cannot be raised, and a backend's sign-out starts again from 0 there.
const MaxCounter = 1 << 30

// ParseCounter reads a sign-out counter, refusing an impossible one.
func ParseCounter(s string) (uint32, bool) {
	n, err := strconv.ParseUint(s, 10, 32)
	return uint32(n), err == nil && n <= MaxCounter
}

// ParseTime reads a time in Unix seconds, refusing one before 1970 or
// past the last second JSON can show.
func ParseTime(s string) (int64, bool) {
	t, err := strconv.ParseInt(s, 10, 64)
	return t, err == nil && t >= 0 && t <= lastTime
}

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

// UnknownDevice names a client whose browser and system are not known.
const UnknownDevice = "Unknown device"

// DeviceLabel keeps a device name made of known names, and turns any
// other text (a header's product token, a forged store entry) into
// UnknownDevice.
func DeviceLabel(name string) string {
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
	return UnknownDevice
}
