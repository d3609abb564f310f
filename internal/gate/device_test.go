package gate

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/account"
	"github.com/caddy-miniapp/miniapp/internal/session"
	"github.com/caddy-miniapp/miniapp/internal/testhash"
	"github.com/caddy-miniapp/miniapp/store"
	"github.com/caddyserver/caddy/v2"
)

func TestOwnName(t *testing.T) {
	g := &Gate{Name: "sid"}
	for _, tc := range []struct {
		secure bool
		suffix string
		want   string
	}{
		{false, "_device", "sid_device"},
		{true, "_device", "__Host-sid_device"},
		{true, "_pending", "__Host-sid_pending"},
	} {
		if got := g.ownName(Wire{Secure: tc.secure}, tc.suffix); got != tc.want {
			t.Errorf("%v %s: %q, want %q", tc.secure, tc.suffix, got, tc.want)
		}
	}
}

// TestKnownDevice: the device cookie a login set names the browser as
// a known device of that account only, on that host, until it expires,
// the account signs out everywhere or changes its password hash.
func TestKnownDevice(t *testing.T) {
	ctx := context.Background()
	wire := Wire{Host: "app.example.test", Secure: true}
	for _, tc := range []struct {
		name   string
		change func(t *testing.T, g *Gate, back Wire) (Wire, string)
		known  bool
	}{
		{"as set", func(_ *testing.T, _ *Gate, back Wire) (Wire, string) { return back, "ada" }, true},
		{"for another name", func(_ *testing.T, _ *Gate, back Wire) (Wire, string) { return back, "grace" }, false},
		{"on another host", func(_ *testing.T, _ *Gate, back Wire) (Wire, string) {
			back.Host = "other.example.test"
			return back, "ada"
		}, false},
		{"without the cookie", func(_ *testing.T, _ *Gate, back Wire) (Wire, string) { back.Cookies = nil; return back, "ada" }, false},
		{"the session cookie in its place", func(_ *testing.T, g *Gate, back Wire) (Wire, string) {
			value, _ := cookieValue(back.Cookies, g.CookieName(back))
			back.Cookies = []string{g.ownName(back, "_device") + "=" + value}
			return back, "ada"
		}, false},
		{"expired", func(_ *testing.T, g *Gate, back Wire) (Wire, string) {
			g.Clock.Advance(deviceLifetime + time.Second)
			return back, "ada"
		}, false},
		{"after a sign out everywhere", func(t *testing.T, g *Gate, back Wire) (Wire, string) {
			g.Shared.SignOutEverywhere(ctx, store.AccountID(ada(t, g).ID))
			return back, "ada"
		}, false},
		{"of an older password hash", func(t *testing.T, g *Gate, back Wire) (Wire, string) {
			g.Accounts = loadAccounts(t, testhash.Bcrypt("lovelace-1815"))
			return back, "ada"
		}, false},
		{"of a removed user", func(t *testing.T, g *Gate, back Wire) (Wire, string) {
			set, err := account.Load([]account.Config{{Username: "grace", Password: adaHash}}, "r", caddy.NewReplacer())
			if err != nil {
				t.Fatal(err)
			}
			g.Accounts = set
			return back, "ada"
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newGate(t, Domain{})
			back, _, _ := start(t, g, wire, 1)
			w, name := tc.change(t, g, back)
			d := g.KnownDevice(ctx, w, name)
			if (d != nil) != tc.known {
				t.Errorf("known %v, want %v", d != nil, tc.known)
			}
			if d != nil && (d.User != "ada" || d.Account != ada(t, g).ID.Tag()) {
				t.Errorf("device %+v", d)
			}
		})
	}
}

// TestDeviceNotInStore: a device cookie sealed with the realm's keys
// but never recorded in the store (or forgotten among older devices) is
// not known.
func TestDeviceNotInStore(t *testing.T) {
	g := newGate(t, Domain{})
	wire := Wire{Host: "app.example.test"}
	acct := ada(t, g)
	h := http.Header{}
	g.setDevice(h, wire, acct, 0, nil) // the cookie alone, as Start sets it
	wire.Cookies = []string{cookieLine(t, h)}
	if g.KnownDevice(context.Background(), wire, "ada") != nil {
		t.Error("a device the store does not know is known")
	}
	d := g.setDevice(http.Header{}, wire, acct, 0, nil)
	g.Shared.AddDevice(context.Background(), store.AccountID(acct.ID), d.ID, d.Expires)
	if g.KnownDevice(context.Background(), wire, "ada") != nil {
		t.Error("another device's record made this cookie known")
	}
}

// TestSetDeviceKeepsID: a browser that was a known device keeps its ID
// (and so its failure count) at its next login, with a new expiry and
// the account's counter now; a new browser gets a new ID.
func TestSetDeviceKeepsID(t *testing.T) {
	g := newGate(t, Domain{})
	wire := Wire{Host: "app.example.test"}
	acct := ada(t, g)
	first := g.setDevice(http.Header{}, wire, acct, 0, nil)
	g.Clock.Advance(24 * time.Hour)
	h := http.Header{}
	again := g.setDevice(h, wire, acct, 3, first)
	if again.ID != first.ID || again.Counter != 3 || !again.Expires.After(first.Expires) {
		t.Errorf("a known device's next login: %+v after %+v", again, first)
	}
	if other := g.setDevice(http.Header{}, wire, acct, 0, nil); other.ID == first.ID {
		t.Error("a new browser got the known device's ID")
	}
	// the cookie carries what setDevice returned
	c := setCookies(t, h)["miniapp_session_device"]
	if c == nil {
		t.Fatalf("no device cookie: %v", h)
	}
	opened, err := g.Keys.Open(session.PurposeDevice, c.Value, "miniapp_session_device", wire.Host)
	if err != nil || opened.ID != first.ID || opened.Counter != 3 {
		t.Errorf("the device cookie opens as %+v, %v", opened, err)
	}
}
