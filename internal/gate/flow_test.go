package gate

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestFlows: each sign-in through a provider has a host-only, Lax,
// ten-minute cookie of its own, read once; starting one deletes the
// oldest the browser holds beyond maxFlows, and taking a flow whose
// cookie the browser lacks deletes none.
func TestFlows(t *testing.T) {
	g := newGate(t, Domain{})
	wire := Wire{Host: "app.example.test", Secure: true}
	h := http.Header{}
	g.SetFlow(h, wire, "key-1", "sealed-1", 10*time.Minute)
	c := setCookies(t, h)["__Host-miniapp_session_with_key-1"]
	if c == nil || c.Value != "sealed-1" || c.SameSite != http.SameSiteLaxMode || c.MaxAge != 600 || !c.HttpOnly || !c.Secure || c.Domain != "" {
		t.Fatalf("the flow cookie: %v", h["Set-Cookie"])
	}

	var held []string
	for i := range 5 {
		held = append(held, fmt.Sprintf("__Host-miniapp_session_with_old-%d=v%d", i, i))
	}
	wire.Cookies = []string{"other=1; " + strings.Join(held, "; ")}
	h = http.Header{}
	g.SetFlow(h, wire, "new", "sealed", 10*time.Minute)
	var deleted, set []string
	for name, c := range setCookies(t, h) {
		if c.MaxAge < 0 {
			deleted = append(deleted, name)
		} else {
			set = append(set, name)
		}
	}
	slices.Sort(deleted)
	want := []string{"__Host-miniapp_session_with_old-0", "__Host-miniapp_session_with_old-1", "__Host-miniapp_session_with_old-2"}
	if !slices.Equal(deleted, want) || !slices.Equal(set, []string{"__Host-miniapp_session_with_new"}) {
		t.Errorf("with five flows held, deleted %v and set %v", deleted, set)
	}

	h = http.Header{}
	if v := g.TakeFlow(h, wire, "old-4"); v != "v4" || len(h["Set-Cookie"]) != 1 || !strings.Contains(h.Get("Set-Cookie"), "Max-Age=0") {
		t.Errorf("taking a held flow: %q %v", v, h["Set-Cookie"])
	}
	h = http.Header{}
	if v := g.TakeFlow(h, wire, "nope"); v != "" || len(h["Set-Cookie"]) != 0 {
		t.Errorf("taking a flow not held: %q %v", v, h["Set-Cookie"])
	}
}
