package storage

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/caddy-miniapp/miniapp/store"
)

// Journal sizes and times.
const (
	// segmentLines is how many entries a segment holds before the next
	// one begins; a write stores the whole current segment.
	segmentLines = 256
	// heartbeat is how often a node rewrites its journal head while it
	// lives, so that others can tell its journal from an orphan.
	heartbeat = 10 * time.Minute
	// orphanAfter is how long a journal head may stay unchanged before
	// its journal counts as an orphan (a node that has stopped), deleted
	// once all its entries have expired.
	orphanAfter = time.Hour
)

// journalPeer is how far this node has read another node's journal.
type journalPeer struct {
	seq    uint64
	lines  int
	maxExp int64
}

// journalHead is a node's journal head: its segments first to last, the
// lines in last, and when it was written.
type journalHead struct {
	first, last uint64
	lines       int
	written     int64
}

// appendLine adds an entry to this node's current segment and stores the
// segment, then the head that makes it visible. When a write fails the
// caller retries the whole entry; an entry read twice is harmless.
func (b *storageBackend) appendLine(ctx context.Context, line string, exp int64) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	seq, lines := b.seq, b.lines
	if len(lines) >= segmentLines {
		seq, lines = seq+1, nil
	}
	lines = append(lines[:len(lines):len(lines)], line)
	if err := b.storage.Store(ctx, b.segmentKey(b.node, seq), []byte(strings.Join(lines, "\n")+"\n")); err != nil {
		return fmt.Errorf("storing journal segment: %v", err)
	}
	b.seq, b.lines = seq, lines
	b.maxExp[seq] = max(b.maxExp[seq], exp)
	if err := b.writeHead(ctx); err != nil {
		return err
	}
	// written after the head, so a node that sees it sees the head too;
	// unique per entry, so it never comes back to a value seen before
	latest := fmt.Sprintf("%s %d %d", b.node, seq, len(lines))
	if err := b.storage.Store(ctx, b.latestKey(), []byte(latest)); err != nil {
		return fmt.Errorf("storing the latest journal entry: %v", err)
	}
	return nil
}

// writeHead stores this node's head; b.mu is held.
func (b *storageBackend) writeHead(ctx context.Context) error {
	now := b.opts.Now()
	head := fmt.Sprintf("%d %d %d %d", b.first, b.seq, len(b.lines), now.Unix())
	if err := b.storage.Store(ctx, b.headKey(b.node), []byte(head)); err != nil {
		return fmt.Errorf("storing journal head: %v", err)
	}
	b.headWrote = now
	return nil
}

// Changes reads what the other nodes' journals hold beyond what was read
// before (everything on the first call), and tends this node's journal:
// expired segments go, the head is kept fresh, orphans are removed. When
// the latest entry is the one seen at the last full read, nothing has
// been appended since, and the heads are read only once per heartbeat
// (for orphans).
func (b *storageBackend) Changes(ctx context.Context) ([]store.Change, error) {
	errs := []error{b.sendUnsent(ctx), b.tend(ctx)}
	latest, err := b.storage.Load(ctx, b.latestKey())
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, errors.Join(append(errs, fmt.Errorf("reading %s: %v", b.latestKey(), err))...)
	}
	now := b.opts.Now()
	if !b.readAll.IsZero() && string(latest) == b.latest && now.Sub(b.readAll) < heartbeat {
		return nil, errors.Join(errs...)
	}
	out, err := b.readPeers(ctx)
	if err == nil {
		b.latest, b.readAll = string(latest), now
	}
	return out, errors.Join(append(errs, err)...)
}

// readPeers reads the unread entries of every other node's journal.
func (b *storageBackend) readPeers(ctx context.Context) ([]store.Change, error) {
	var errs []error
	nodes, err := b.storage.List(ctx, b.headsDir(), false)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("listing %s: %v", b.headsDir(), err)
	}
	var out []store.Change
	for _, key := range nodes {
		// a node is 16 hex digits; anything else is a file being written
		node := path.Base(key)
		if id, err := hex.DecodeString(node); err != nil || len(id) != 8 || node == b.node {
			continue
		}
		// what was read of a node before an error is kept and returned
		out, err = b.readPeer(ctx, node, out)
		errs = append(errs, err)
	}
	return out, errors.Join(errs...)
}

// readPeer appends the unread entries of one node's journal to out, and
// returns out with what it read before any error.
func (b *storageBackend) readPeer(ctx context.Context, node string, out []store.Change) ([]store.Change, error) {
	head, err := b.loadHead(ctx, node)
	if errors.Is(err, fs.ErrNotExist) {
		return out, nil // being made, or being removed
	}
	if err != nil {
		return out, err
	}
	p := b.peers[node]
	if p == nil {
		p = &journalPeer{seq: head.first}
		b.peers[node] = p
	}
	if p.seq < head.first {
		p.seq, p.lines = head.first, 0
	}
	for p.seq <= head.last && !(p.seq == head.last && p.lines >= head.lines) {
		data, err := b.storage.Load(ctx, b.segmentKey(node, p.seq))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return out, err
		}
		entries := strings.SplitAfter(string(data), "\n")
		if n := len(entries); n > 0 && !strings.HasSuffix(entries[n-1], "\n") {
			entries = entries[:n-1] // a line being written
		}
		if p.seq == head.last {
			entries = entries[:min(len(entries), head.lines)]
		}
		for _, line := range entries[min(p.lines, len(entries)):] {
			if c, exp, ok := parseJournalLine(strings.TrimSuffix(line, "\n")); ok {
				out = append(out, c)
				p.maxExp = max(p.maxExp, exp)
			}
		}
		if p.seq == head.last {
			p.lines = len(entries)
			break
		}
		p.seq, p.lines = p.seq+1, 0
	}
	now := b.opts.Now()
	if now.Sub(time.Unix(head.written, 0)) > orphanAfter && p.maxExp < now.Unix() {
		b.removeJournal(ctx, node)
	}
	return out, nil
}

// loadHead reads a node's journal head.
func (b *storageBackend) loadHead(ctx context.Context, node string) (journalHead, error) {
	var h journalHead
	data, err := b.storage.Load(ctx, b.headKey(node))
	if err != nil {
		return h, err
	}
	if _, err := fmt.Sscanf(string(data), "%d %d %d %d", &h.first, &h.last, &h.lines, &h.written); err != nil {
		return h, fmt.Errorf("%s: %v", b.headKey(node), err)
	}
	return h, nil
}

// parseJournalLine reads "s <session entry>", "r <id> <expires>" or
// "c <account> <counter> <until>", with the time until which the entry
// matters.
func parseJournalLine(line string) (store.Change, int64, bool) {
	if entry, ok := strings.CutPrefix(line, "s "); ok {
		e, ok := store.ParseEntry(entry)
		return store.Change{Login: &e}, e.Expires.Unix(), ok
	}
	f := strings.Fields(line)
	if len(f) < 3 {
		return store.Change{}, 0, false
	}
	key, err := hex.DecodeString(f[1])
	if err != nil || len(key) != 16 {
		return store.Change{}, 0, false
	}
	switch {
	case f[0] == "r" && len(f) == 3:
		exp, err := strconv.ParseInt(f[2], 10, 64)
		return store.Change{Revoked: true, ID: [16]byte(key), Expires: time.Unix(exp, 0)}, exp, err == nil
	case f[0] == "c" && len(f) == 4:
		n, err1 := strconv.ParseUint(f[2], 10, 32)
		until, err2 := strconv.ParseInt(f[3], 10, 64)
		return store.Change{Account: store.AccountID(key), Counter: uint32(n)}, until, err1 == nil && err2 == nil
	}
	return store.Change{}, 0, false
}

// tend deletes this node's segments whose entries have all expired and
// keeps its head fresh, so others do not take it for an orphan.
func (b *storageBackend) tend(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.headWrote.IsZero() {
		return nil // no journal yet
	}
	now := b.opts.Now()
	pruned := false
	for b.first < b.seq && b.maxExp[b.first] < now.Unix() {
		if err := b.storage.Delete(ctx, b.segmentKey(b.node, b.first)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("deleting an expired journal segment: %v", err)
		}
		delete(b.maxExp, b.first)
		b.first++
		pruned = true
	}
	if pruned || now.Sub(b.headWrote) > heartbeat {
		return b.writeHead(ctx)
	}
	return nil
}

// removeJournal deletes the journal of a node that has stopped, once all
// its entries have expired.
func (b *storageBackend) removeJournal(ctx context.Context, node string) {
	keys, _ := b.storage.List(ctx, b.journalDir()+"/"+node, false) // none on error
	for _, key := range keys {
		_ = b.storage.Delete(ctx, key)
	}
	_ = b.storage.Delete(ctx, b.journalDir()+"/"+node)
	_ = b.storage.Delete(ctx, b.headKey(node))
	delete(b.peers, node)
}
