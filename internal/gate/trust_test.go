package gate

import (
	"net/http"
	"testing"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/account"
	"github.com/caddyserver/caddy/v2"
)

// TestTrust: a trusted browser's cookie is host-only, HttpOnly, Lax,
// for the trust's lifetime, and opens as the trust of its own account
// on its own host alone, until it expires.
func TestTrust(t *testing.T) {
	const lifetime = 30 * 24 * time.Hour
	for _, secure := range []bool{false, true} {
		g := newGate(t, Domain{})
		wire := Wire{Host: "app.example.test", Secure: secure}
		h := http.Header{}
		acct := ada(t, g)
		trust := g.SetTrust(h, wire, acct, lifetime)
		c := setCookies(t, h)[g.ownName(wire, trustSuffix)]
		if c == nil || !c.HttpOnly || c.Secure != secure || c.SameSite != http.SameSiteLaxMode || c.Domain != "" || c.MaxAge != int(lifetime.Seconds()) {
			t.Fatalf("secure %v: %v", secure, h.Values("Set-Cookie"))
		}
		back := wire
		back.Cookies = []string{"theme=dark; " + cookieLine(t, h)}
		if got := g.TrustOf(back, acct); got == nil || got.ID != trust.ID {
			t.Errorf("secure %v: the trust does not open as ada's: %+v", secure, got)
		}
		other := back
		other.Host = "other.example.test"
		if g.TrustOf(other, acct) != nil {
			t.Errorf("secure %v: the trust opened on another host", secure)
		}
		grace, err := account.Load([]account.Config{{Username: "grace", Password: adaHash}}, "r", caddy.NewReplacer())
		if err != nil {
			t.Fatal(err)
		}
		if acct, _ := grace.Lookup("grace"); g.TrustOf(back, acct) != nil {
			t.Errorf("secure %v: ada's trust opened as grace's", secure)
		}
		if session, _, _ := start(t, g, wire, 2); g.TrustOf(session, acct) != nil {
			t.Errorf("secure %v: a session cookie opened as a trust", secure)
		}
		g.Clock.Advance(lifetime)
		if g.TrustOf(back, acct) != nil {
			t.Errorf("secure %v: the trust opened once expired", secure)
		}
	}
}
