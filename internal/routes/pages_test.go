package routes

import (
	"bytes"
	"testing"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/gate"
)

func TestPages(t *testing.T) {
	var p pages
	now := time.Now()
	s, other := [16]byte{1}, [16]byte{2}
	client := clientOfPage(gate.Client{IP: "192.0.2.1", UserAgent: "Firefox"})
	body := []byte("<p>page</p>")
	p.put(s, 7, client, now.Add(pageFresh), body, now)
	body[0] = 'X'
	if got, ok := p.get(s, 7, client, now); !ok || !bytes.Equal(got, []byte("<p>page</p>")) {
		t.Fatalf("the page kept: %q %v, want the bytes as they were put", got, ok)
	}
	for name, miss := range map[string]func() bool{
		"another session":       func() bool { _, ok := p.get(other, 7, client, now); return !ok },
		"a change of the realm": func() bool { _, ok := p.get(s, 8, client, now); return !ok },
		"another client": func() bool {
			_, ok := p.get(s, 7, clientOfPage(gate.Client{IP: "192.0.2.2", UserAgent: "Firefox"}), now)
			return !ok
		},
		"another browser": func() bool {
			_, ok := p.get(s, 7, clientOfPage(gate.Client{IP: "192.0.2.1", UserAgent: "Chrome"}), now)
			return !ok
		},
		"after its time":            func() bool { _, ok := p.get(s, 7, client, now.Add(pageFresh)); return !ok },
		"the same, before its time": func() bool { _, ok := p.get(s, 7, client, now.Add(pageFresh-time.Second)); return ok },
	} {
		if !miss() {
			t.Errorf("%s: the kept page was not judged right", name)
		}
	}
}

func TestPagesBounded(t *testing.T) {
	var p pages
	now := time.Now()
	for i := range maxPages {
		p.put([16]byte{byte(i), byte(i >> 8)}, uint64(i%2), pageClient{}, now.Add(pageFresh), []byte("x"), now)
	}
	if len(p.kept) != maxPages {
		t.Fatalf("%d pages kept, want %d", len(p.kept), maxPages)
	}
	// a new page at version 1 drops those of version 0, stale now
	p.put([16]byte{0xff, 0xff}, 1, pageClient{}, now.Add(pageFresh), []byte("x"), now)
	if len(p.kept) != maxPages/2+1 {
		t.Errorf("%d pages kept after the stale ones went, want %d", len(p.kept), maxPages/2+1)
	}
	for i := range maxPages {
		p.put([16]byte{0xee, byte(i), byte(i >> 8)}, 1, pageClient{}, now.Add(pageFresh), []byte("x"), now)
	}
	if len(p.kept) > maxPages {
		t.Errorf("%d pages kept, more than %d", len(p.kept), maxPages)
	}
}

func TestPageDropped(t *testing.T) {
	var p pages
	now := time.Now()
	p.put([16]byte{1}, 1, pageClient{}, now.Add(pageFresh), []byte("x"), now)
	p.drop([16]byte{1})
	if _, ok := p.get([16]byte{1}, 1, pageClient{}, now); ok || len(p.kept) != 0 {
		t.Error("a dropped page is kept")
	}
}
