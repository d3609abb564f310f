package gate

import (
	"context"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

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
	if _, ok := g.opened.get(g.Keys, value, name, back.Host); ok {
		t.Fatal("a cookie is kept before it was opened")
	}
	first, _ := g.Open(back, false)
	if first == nil {
		t.Fatal("the cookie did not open")
	}
	kept, ok := g.opened.get(g.Keys, value, name, back.Host)
	if !ok || kept != first.Session {
		t.Fatalf("kept %v %v, want the session it opened to", kept, ok)
	}
	was := *kept
	if again, _ := g.Open(back, false); again == nil || again.Session != first.Session {
		t.Fatal("the second request did not get the session kept")
	}
	other, err := session.NewKeyring([][]byte{session.Random(32)}, "r")
	if err != nil {
		t.Fatal(err)
	}
	for _, miss := range []struct {
		keys              *session.Keyring
		value, name, host string
	}{
		{g.Keys, value + "A", name, back.Host},
		{g.Keys, value, g.Name, back.Host},
		{g.Keys, value, name, "other.example.test"},
		{other, value, name, back.Host},
	} {
		if _, ok := g.opened.get(miss.keys, miss.value, miss.name, miss.host); ok {
			t.Errorf("kept for %+v", miss)
		}
	}

	// what the requests of a kept cookie do leaves the session kept as
	// it was: renewed, kept alive, opened again
	g.Clock.Advance(testIdle/2 + time.Second)
	again, _ := g.Open(back, false)
	if again == nil {
		t.Fatal("the cookie did not open again")
	}
	h := http.Header{}
	g.Renew(h, back, again)
	if len(h.Values("Set-Cookie")) == 0 {
		t.Fatal("the session was not renewed")
	}
	g.KeepAlive(context.Background(), again)
	if !reflect.DeepEqual(*kept, was) {
		t.Errorf("the kept session changed: %+v, was %+v", *kept, was)
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

// TestOpenedBound: at most maxOpened values are kept, the newest always,
// and none of a host longer than a DNS name.
func TestOpenedBound(t *testing.T) {
	var o opened
	keys, err := session.NewKeyring([][]byte{session.Random(32)}, "r")
	if err != nil {
		t.Fatal(err)
	}
	s := &session.Session{User: "ada"}
	for i := range maxOpened + 10 {
		o.put(keys, "value-"+strconv.Itoa(i), "sid", "a.test", s)
	}
	if len(o.kept) != maxOpened {
		t.Errorf("%d kept, want %d", len(o.kept), maxOpened)
	}
	if _, ok := o.get(keys, "value-"+strconv.Itoa(maxOpened+9), "sid", "a.test"); !ok {
		t.Error("the newest value is not kept")
	}
	long := strings.Repeat("a", maxOpenedHost+1)
	o.put(keys, "value-long", "sid", long, s)
	if _, ok := o.get(keys, "value-long", "sid", long); ok {
		t.Error("a value of a host longer than a DNS name is kept")
	}
}
