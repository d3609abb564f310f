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
	// maxPages bounds the pages kept, one per session, and maxKept
	// their bytes; a page larger than maxPage (an account with many
	// sessions, passkeys and apps) is not kept.
	maxPages = 1024
	maxKept  = 4 << 20
	maxPage  = 32 << 10
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
	size int
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
	defer p.mu.Unlock()
	k, ok := p.kept[session]
	switch {
	case !ok:
		return nil, false
	case k.version != version || !now.Before(k.until):
		p.deleteLocked(session)
		return nil, false
	case k.client != client:
		return nil, false
	}
	return k.body, true
}

// drop forgets the session's page: it has ended.
func (p *pages) drop(session [16]byte) {
	p.mu.Lock()
	p.deleteLocked(session)
	p.mu.Unlock()
}

// deleteLocked forgets a page; p.mu is held.
func (p *pages) deleteLocked(session [16]byte) {
	p.size -= len(p.kept[session].body)
	delete(p.kept, session)
}

// put keeps a copy of the session's page, rendered at version (the
// realm's current one) for client, until until. When the pages kept are
// too many or too large, those that are stale go first (a page of an
// older version never shows again), then any.
func (p *pages) put(session [16]byte, version uint64, client pageClient, until time.Time, body []byte, now time.Time) {
	if len(body) > maxPage {
		return
	}
	k := keptPage{body: append([]byte(nil), body...), version: version, client: client, until: until}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.kept == nil {
		p.kept = make(map[[16]byte]keptPage)
	}
	p.deleteLocked(session)
	if len(p.kept) >= maxPages || p.size+len(k.body) > maxKept {
		for id, old := range p.kept {
			if old.version != version || !now.Before(old.until) {
				p.deleteLocked(id)
			}
		}
		for id := range p.kept {
			if len(p.kept) < maxPages && p.size+len(k.body) <= maxKept {
				break
			}
			p.deleteLocked(id)
		}
	}
	p.kept[session] = k
	p.size += len(k.body)
}
