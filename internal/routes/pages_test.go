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
	for _, tc := range []struct {
		name string
		kept func() bool
		want bool
	}{
		{"another session", func() bool { _, ok := p.get(other, 7, client, now); return ok }, false},
		{"another client", func() bool {
			_, ok := p.get(s, 7, clientOfPage(gate.Client{IP: "192.0.2.2", UserAgent: "Firefox"}), now)
			return ok
		}, false},
		{"another browser", func() bool {
			_, ok := p.get(s, 7, clientOfPage(gate.Client{IP: "192.0.2.1", UserAgent: "Chrome"}), now)
			return ok
		}, false},
		{"the same, before its time", func() bool { _, ok := p.get(s, 7, client, now.Add(pageFresh-time.Second)); return ok }, true},
		{"after its time", func() bool { _, ok := p.get(s, 7, client, now.Add(pageFresh)); return ok }, false},
		{"the same again: forgotten once stale", func() bool { _, ok := p.get(s, 7, client, now); return ok }, false},
	} {
		if tc.kept() != tc.want {
			t.Errorf("%s: kept %v, want %v", tc.name, !tc.want, tc.want)
		}
	}
	p.put(s, 7, client, now.Add(pageFresh), body, now)
	if _, ok := p.get(s, 8, client, now); ok {
		t.Error("a page was shown after a change of the realm")
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

// TestPagesBytes: the pages kept stay within maxKept bytes, a page
// larger than maxPage is not kept, and a stale page found is forgotten.
func TestPagesBytes(t *testing.T) {
	var p pages
	now := time.Now()
	big := make([]byte, maxPage)
	for i := range 2 * maxKept / maxPage {
		p.put([16]byte{byte(i), byte(i >> 8)}, 1, pageClient{}, now.Add(pageFresh), big, now)
		if p.size > maxKept || p.size != len(p.kept)*maxPage {
			t.Fatalf("%d bytes kept in %d pages, want at most %d and the sum of the pages", p.size, len(p.kept), maxKept)
		}
	}
	p.put([16]byte{0xfe, 0xfe}, 1, pageClient{}, now.Add(pageFresh), make([]byte, maxPage+1), now)
	if _, ok := p.kept[[16]byte{0xfe, 0xfe}]; ok {
		t.Error("a page over maxPage was kept")
	}
	n := len(p.kept)
	var any [16]byte
	for id := range p.kept {
		any = id
		break
	}
	if _, ok := p.get(any, 2, pageClient{}, now); ok || len(p.kept) != n-1 || p.size != (n-1)*maxPage {
		t.Errorf("a stale page found: %d pages, %d bytes kept, want it forgotten", len(p.kept), p.size)
	}
}
