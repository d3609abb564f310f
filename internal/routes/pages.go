package routes

import (
	"hash/maphash"
	"sync"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/gate"
)

// Bounds of the profile pages kept.
const (
	// pageFresh is how long a kept page may be shown again while the
	// realm has not changed: what it lists that expires by time alone (a
	// session, a trusted browser, an app's grant) shows at most this much
	// longer. What a change asks for (the step-up) is never kept past the
	// moment it changes.
	pageFresh = 10 * time.Second
	// maxPages bounds the pages kept, one per session (a few KiB each).
	maxPages = 1024
)

// pages keeps each session's profile page as last rendered, with the
// realm's version it was rendered at: a reload of the page is the same
// bytes until anything the realm holds changes (a sign-in or sign-out
// anywhere, a factor, a passkey, a trust, a grant, on this node or read
// from the store) or pageFresh passes. A page is shown only to its own
// session, and a config reload starts with none.
type pages struct {
	mu   sync.Mutex
	kept map[[16]byte]keptPage
}

// keptPage is a rendered page, the realm's version it shows, the
// client it was rendered for and until when it may be shown.
type keptPage struct {
	body    []byte
	version uint64
	client  pageClient
	until   time.Time
}

// pageClient is the client a page was rendered for: a session the index
// does not list yet is shown as the client that asks. Its browser is
// kept as a hash, so that a long User-Agent costs nothing kept.
type pageClient struct {
	ip      string
	browser uint64
}

// browserSeed seeds the hashes of User-Agents.
var browserSeed = maphash.MakeSeed()

// clientOfPage is the client as a page keeps it.
func clientOfPage(c gate.Client) pageClient {
	return pageClient{ip: c.IP, browser: maphash.String(browserSeed, c.UserAgent)}
}

// get returns the session's page when it was rendered at version for
// client and is fresh at now.
func (p *pages) get(session [16]byte, version uint64, client pageClient, now time.Time) ([]byte, bool) {
	p.mu.Lock()
	k, ok := p.kept[session]
	p.mu.Unlock()
	if !ok || k.version != version || k.client != client || !now.Before(k.until) {
		return nil, false
	}
	return k.body, true
}

// drop forgets the session's page: it has ended.
func (p *pages) drop(session [16]byte) {
	p.mu.Lock()
	delete(p.kept, session)
	p.mu.Unlock()
}

// put keeps a copy of the session's page, rendered at version for
// client, until until; when full it first drops the pages that are
// stale, or else one.
func (p *pages) put(session [16]byte, version uint64, client pageClient, until time.Time, body []byte, now time.Time) {
	k := keptPage{body: append([]byte(nil), body...), version: version, client: client, until: until}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.kept == nil {
		p.kept = make(map[[16]byte]keptPage)
	}
	if _, ok := p.kept[session]; !ok && len(p.kept) >= maxPages {
		for id, old := range p.kept {
			if old.version != version || !now.Before(old.until) {
				delete(p.kept, id)
			}
		}
		for id := range p.kept {
			if len(p.kept) < maxPages {
				break
			}
			delete(p.kept, id)
		}
	}
	p.kept[session] = k
}
