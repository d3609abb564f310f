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

// pending sets ada's pending sign-in on the wire and returns the wire
// that sends it back, and the headers it was set in.
func pending(t *testing.T, g *Gate, wire Wire) (Wire, http.Header) {
	t.Helper()
	h := http.Header{}
	g.SetPending(context.Background(), h, wire, ada(t, g), session.MethodPassword, nil)
	wire.Cookies = []string{"theme=dark; " + cookieLine(t, h)}
	return wire, h
}

// TestSetPending: the pending sign-in's cookie is host-only, HttpOnly,
// Strict, for five minutes, and opens as ada's pending sign-in.
func TestSetPending(t *testing.T) {
	for _, secure := range []bool{false, true} {
		g := newGate(t, Domain{})
		wire := Wire{Host: "app.example.test", Secure: secure}
		back, h := pending(t, g, wire)
		c := setCookies(t, h)[g.ownName(wire, "_pending")]
		if c == nil || len(h.Values("Set-Cookie")) != 1 || !c.HttpOnly || c.Secure != secure || c.SameSite != http.SameSiteStrictMode ||
			c.Domain != "" || c.Path != "/" || c.MaxAge != int(PendingLifetime.Seconds()) {
			t.Errorf("secure %v: %v", secure, h.Values("Set-Cookie"))
		}
		p, acct := g.Pending(context.Background(), back)
		if p == nil || acct != ada(t, g) || p.User != "ada" {
			t.Errorf("secure %v: pending %+v of %v", secure, p, acct)
		}
		if s, why := g.Open(back, false); s != nil || why != "" {
			t.Errorf("secure %v: the pending cookie opened a session: %+v %q", secure, s, why)
		}
	}
}

// TestPending: every pending sign-in that must not finish is none.
func TestPending(t *testing.T) {
	ctx := context.Background()
	wire := Wire{Host: "app.example.test", Secure: true}
	for _, tc := range []struct {
		name   string
		change func(t *testing.T, g *Gate, back Wire) Wire
		ok     bool
	}{
		{"as set", func(_ *testing.T, _ *Gate, back Wire) Wire { return back }, true},
		{"just before it expires", func(_ *testing.T, g *Gate, back Wire) Wire {
			g.Clock.Advance(PendingLifetime - 5*time.Second)
			return back
		}, true},
		{"expired", func(_ *testing.T, g *Gate, back Wire) Wire { g.Clock.Advance(PendingLifetime); return back }, false},
		{"on another host", func(_ *testing.T, _ *Gate, back Wire) Wire { back.Host = "other.example.test"; return back }, false},
		{"over plain HTTP", func(_ *testing.T, _ *Gate, back Wire) Wire { back.Secure = false; return back }, false},
		{"used", func(t *testing.T, g *Gate, back Wire) Wire {
			p, _ := g.Pending(ctx, back)
			if p == nil {
				t.Fatal("no pending sign-in")
			}
			g.Shared.Revoke(ctx, p.ID, p.Expires)
			return back
		}, false},
		{"after a sign out everywhere", func(t *testing.T, g *Gate, back Wire) Wire {
			g.Shared.SignOutEverywhere(ctx, store.AccountID(ada(t, g).ID))
			return back
		}, false},
		{"of an older password hash", func(t *testing.T, g *Gate, back Wire) Wire {
			g.Accounts = loadAccounts(t, testhash.Bcrypt("lovelace-1815"))
			return back
		}, false},
		{"of a removed user", func(t *testing.T, g *Gate, back Wire) Wire {
			set, err := account.Load([]account.Config{{Username: "grace", Password: adaHash}}, "r", caddy.NewReplacer())
			if err != nil {
				t.Fatal(err)
			}
			g.Accounts = set
			return back
		}, false},
		{"a session cookie in its place", func(t *testing.T, g *Gate, back Wire) Wire {
			signedIn, _, _ := start(t, g, back, 1)
			value, _ := cookieValue(signedIn.Cookies, g.CookieName(back))
			back.Cookies = []string{g.ownName(back, "_pending") + "=" + value}
			return back
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newGate(t, Domain{})
			back, _ := pending(t, g, wire)
			p, acct := g.Pending(ctx, tc.change(t, g, back))
			if (p != nil) != tc.ok || (acct != nil) != tc.ok {
				t.Errorf("pending %+v of %v, want one %v", p, acct, tc.ok)
			}
		})
	}
}

// TestClearPending deletes the cookie under the name it was set with.
func TestClearPending(t *testing.T) {
	for _, secure := range []bool{false, true} {
		g := &Gate{Name: "sid"}
		wire := Wire{Host: "app.example.test", Secure: secure}
		h := http.Header{}
		g.ClearPending(h, wire)
		c := setCookies(t, h)[g.ownName(wire, "_pending")]
		if c == nil || c.Value != "" || c.MaxAge >= 0 || c.Secure != secure || c.SameSite != http.SameSiteStrictMode {
			t.Errorf("secure %v: %v", secure, h.Values("Set-Cookie"))
		}
	}
}
