package gate

import (
	"strconv"
	"testing"

	"github.com/caddy-miniapp/miniapp/internal/session"
)

// TestOpenedKept: a cookie that opened is kept by its value, name and
// host, and its next request gets the same session without opening it
// again; one that did not open is never kept.
func TestOpenedKept(t *testing.T) {
	g := newGate(t, Domain{})
	back, _, _ := start(t, g, Wire{Host: "app.example.test", Secure: true}, 1)
	name := g.CookieName(back)
	value, _ := cookieValue(back.Cookies, name)
	if _, ok := g.opened.get(value, name, back.Host); ok {
		t.Fatal("a cookie is kept before it was opened")
	}
	first, _ := g.Open(back, false)
	if first == nil {
		t.Fatal("the cookie did not open")
	}
	kept, ok := g.opened.get(value, name, back.Host)
	if !ok || kept != first.Session {
		t.Fatalf("kept %v %v, want the session it opened to", kept, ok)
	}
	if again, _ := g.Open(back, false); again == nil || again.Session != first.Session {
		t.Fatal("the second request did not get the session kept")
	}
	for _, miss := range []struct{ value, name, host string }{
		{value + "A", name, back.Host},
		{value, g.Name, back.Host},
		{value, name, "other.example.test"},
	} {
		if _, ok := g.opened.get(miss.value, miss.name, miss.host); ok {
			t.Errorf("kept for %+v", miss)
		}
	}

	forged := back
	forged.Cookies = []string{name + "=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}
	if s, why := g.Open(forged, false); s != nil || why != "malformed" {
		t.Fatalf("a forged value: %v %q", s, why)
	}
	if len(g.opened.kept) != 1 {
		t.Errorf("%d values kept, want the one that opened", len(g.opened.kept))
	}
}

// TestOpenedBound: at most maxOpened values are kept, the newest always.
func TestOpenedBound(t *testing.T) {
	var o opened
	s := &session.Session{User: "ada"}
	for i := range maxOpened + 10 {
		o.put("value-"+strconv.Itoa(i), "sid", "a.test", s)
	}
	if len(o.kept) != maxOpened {
		t.Errorf("%d kept, want %d", len(o.kept), maxOpened)
	}
	if _, ok := o.get("value-"+strconv.Itoa(maxOpened+9), "sid", "a.test"); !ok {
		t.Error("the newest value is not kept")
	}
}
