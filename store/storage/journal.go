package storage

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caddy-miniapp/miniapp/store"
	"go.uber.org/zap"
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
	// maxSegmentBytes bounds a segment that is read: segmentLines lines
	// of at most about 2 KiB (an entry's device name and address are
	// short).
	maxSegmentBytes = segmentLines * 2048
	// maxSegments bounds the segments one journal may span: a quarter
	// of a billion entries.
	maxSegments = 1 << 20
	// maxRemember bounds the session lifetime a head may announce.
	maxRemember = 10 * 365 * 24 * 3600
	// lastTime is the last second a head may be written at
	// (9999-12-31T23:59:59Z).
	lastTime = 253402300799
)

// journalPeer is how far this node has read another node's journal.
type journalPeer struct {
	seq    uint64
	lines  int
	maxExp int64
}

// journalHead is a node's journal head: its segments first to last, the
// lines in last, when it was written, and the session lifetime its
// changes must stay readable for.
type journalHead struct {
	first, last uint64
	lines       int
	written     int64
	remember    time.Duration
}

// queuedLine is a journal entry waiting for the write that carries it;
// done receives that write's outcome, or errLead when this entry's
// caller is to write the queue itself.
type queuedLine struct {
	line string
	exp  int64
	done chan error
}

// errLead hands the next write to a queued entry's caller;
// errUnfinished is the outcome of a write that panicked.
var (
	errLead       = errors.New("write the queued journal entries")
	errUnfinished = errors.New("the journal write did not finish")
)

// appendLine adds an entry to this node's journal. Entries appended
// while a write is under way wait for the next one and go together
// (a group commit: one segment, head and latest write for all of
// them), so concurrent logouts and code exchanges cost one write, not
// one each. The caller whose entry opens a write writes everything
// queued by then within store.Timeout, even if its own request ends,
// hands the rest to the next waiter and returns: no caller writes for
// others longer than one write. A waiter whose request ends leaves the
// queue unless the write is its own already. When a write fails each
// of its callers retries the whole entry; an entry read twice is
// harmless.
func (b *storageBackend) appendLine(ctx context.Context, line string, exp int64) error {
	q := queuedLine{line, exp, make(chan error, 1)}
	b.queueMu.Lock()
	b.queued = append(b.queued, q)
	lead := !b.writing
	b.writing = true
	b.queueMu.Unlock()
	if !lead {
		if err := b.wait(ctx, q); err != errLead {
			return err
		}
	}
	b.queueMu.Lock()
	batch := b.queued
	b.queued = nil
	b.queueMu.Unlock()
	err := errUnfinished
	defer func() {
		// the others learn the outcome and the next waiter leads, even
		// when the storage panicked
		for _, o := range batch {
			if o.done != q.done {
				o.done <- err
			}
		}
		b.queueMu.Lock()
		if len(b.queued) > 0 {
			b.queued[0].done <- errLead
		} else {
			b.writing = false
		}
		b.queueMu.Unlock()
	}()
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), store.Timeout)
	defer cancel()
	err = b.appendLines(wctx, batch)
	return err
}

// wait waits for the write of a queued entry: its outcome, errLead, or
// the end of ctx, which takes the entry out of the queue unless its
// outcome (or the lead) came meanwhile.
func (b *storageBackend) wait(ctx context.Context, q queuedLine) error {
	select {
	case err := <-q.done:
		return err
	case <-ctx.Done():
	}
	b.queueMu.Lock()
	defer b.queueMu.Unlock()
	select {
	case err := <-q.done:
		return err
	default:
	}
	b.queued = slices.DeleteFunc(b.queued, func(o queuedLine) bool { return o.done == q.done })
	return ctx.Err()
}

// appendLines adds entries to this node's current segment (the next one
// when it is full) and stores the segment, then the head that makes them
// visible.
func (b *storageBackend) appendLines(ctx context.Context, batch []queuedLine) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	// a copy: b.lines stays as it is until its segment is stored
	seq, lines := b.seq, slices.Clip(b.lines)
	exp := int64(math.MinInt64)
	for i, q := range batch {
		if len(lines) >= segmentLines {
			if i > 0 {
				if err := b.storeSegment(ctx, seq, lines, exp); err != nil {
					return err
				}
			}
			seq, lines, exp = seq+1, nil, math.MinInt64
		}
		lines = append(lines, q.line)
		exp = max(exp, q.exp)
	}
	if err := b.storeSegment(ctx, seq, lines, exp); err != nil {
		return err
	}
	if err := b.writeHead(ctx); err != nil {
		return err
	}
	// written after the head, so a node that sees it sees the head too;
	// unique per write, so it never comes back to a value seen before
	latest := fmt.Sprintf("%s %d %d", b.node, seq, len(lines))
	if err := b.storage.Store(ctx, b.latestKey(), []byte(latest)); err != nil {
		return fmt.Errorf("storing the latest journal entry: %v", err)
	}
	// the next sync reads everything once: the latest entry is this
	// node's own, and a store that loses it afterwards must be noticed
	b.wrote = true
	return nil
}

// storeSegment stores segment seq with its lines and makes it this node's
// current one; exp is the latest expiry among the lines added; b.mu is
// held.
func (b *storageBackend) storeSegment(ctx context.Context, seq uint64, lines []string, exp int64) error {
	if err := b.storage.Store(ctx, b.segmentKey(b.node, seq), []byte(strings.Join(lines, "\n")+"\n")); err != nil {
		return fmt.Errorf("storing journal segment: %v", err)
	}
	b.seq, b.lines = seq, lines
	b.maxExp[seq] = max(b.maxExp[seq], exp)
	return nil
}

// writeHead stores this node's head; b.mu is held.
func (b *storageBackend) writeHead(ctx context.Context) error {
	now := b.opts.Now()
	head := fmt.Sprintf("%d %d %d %d %d", b.first, b.seq, len(b.lines), now.Unix(), int64(b.opts.Remember.Seconds()))
	if err := b.storage.Store(ctx, b.headKey(b.node), []byte(head)); err != nil {
		return fmt.Errorf("storing journal head: %v", err)
	}
	b.headWrote = now
	return nil
}

// Changes reads what the other nodes' journals hold beyond what was read
// before (everything on the first call), and tends this node's journal:
// expired segments go, the head is kept fresh, orphans are removed. When
// the latest entry is the one seen at the last full read and this node
// has appended nothing since, nothing has changed, and the heads are read
// only once per heartbeat (for orphans). A full read also checks the
// realm's generation: an emptied folder has lost the latest entry.
func (b *storageBackend) Changes(ctx context.Context) ([]store.Change, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	errs := []error{b.sendUnsent(ctx), b.tend(ctx)}
	latest, err := b.load(ctx, b.latestKey(), maxRecordBytes)
	if errors.Is(err, errTooLarge) {
		b.warnOnce("latest", "size", "the latest journal entry's file is larger than it can be; it is taken as absent", nil)
		latest, err = nil, nil
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, errors.Join(append(errs, fmt.Errorf("reading %s: %v", b.latestKey(), err))...)
	}
	now := b.opts.Now()
	b.mu.Lock()
	wrote := b.wrote
	b.wrote = false
	b.mu.Unlock()
	if !wrote && !b.readAll.IsZero() && string(latest) == b.latest && now.Sub(b.readAll) < heartbeat {
		return nil, errors.Join(errs...)
	}
	out, err := b.readPeers(ctx)
	out, rerr := b.readRecords(ctx, out)
	err = errors.Join(err, rerr)
	// checked after the entries, and reported before them: whatever
	// generation they were written under, they apply after its change
	generation, gerr := b.checkGeneration(ctx)
	out = append(generation, out...)
	if err == nil && gerr == nil {
		b.latest, b.readAll = string(latest), now
	}
	return out, errors.Join(append(errs, err, gerr)...)
}

// readPeers reads the unread entries of every other node's journal.
func (b *storageBackend) readPeers(ctx context.Context) ([]store.Change, error) {
	var errs []error
	nodes, err := b.storage.List(ctx, b.headsDir(), false)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("listing %s: %v", b.headsDir(), err)
	}
	var out []store.Change
	remember := b.opts.Remember
	for _, key := range nodes {
		if ctx.Err() != nil {
			return out, errors.Join(append(errs, ctx.Err())...)
		}
		// a node is 16 hex digits; anything else is a file being written
		node := path.Base(key)
		if id, err := hex.DecodeString(node); err != nil || len(id) != 8 || node == b.node {
			continue
		}
		// what was read of a node before an error is kept and returned
		var head journalHead
		out, head, err = b.readPeer(ctx, node, out)
		errs = append(errs, err)
		remember = max(remember, head.remember)
	}
	b.mu.Lock()
	b.remember = remember
	b.mu.Unlock()
	return out, errors.Join(errs...)
}

// readPeer appends the unread entries of one node's journal to out, and
// returns out with what it read before any error, and the node's head.
// A head or segment that cannot be true (files on a shared disk are
// input like any other) costs one bounded read and one warning.
func (b *storageBackend) readPeer(ctx context.Context, node string, out []store.Change) ([]store.Change, journalHead, error) {
	head, err := b.loadHead(ctx, node)
	if errors.Is(err, fs.ErrNotExist) {
		return out, head, nil // being made, or being removed
	}
	if errors.Is(err, errBadHead) {
		b.warnOnce(node, "head", "a journal head that cannot be true; its journal is not read", err)
		return out, journalHead{}, nil
	}
	if err != nil {
		return out, head, err
	}
	p := b.peers[node]
	if p == nil {
		p = &journalPeer{seq: head.first}
		b.peers[node] = p
	}
	if p.seq < head.first {
		p.seq, p.lines = head.first, 0
	}
	for p.seq <= head.last && (p.seq != head.last || p.lines < head.lines) {
		if ctx.Err() != nil {
			return out, head, ctx.Err()
		}
		entries, err := b.loadSegment(ctx, node, p.seq)
		if errors.Is(err, errTooLarge) {
			b.warnOnce(node, "size", "a journal segment larger than a segment can be; it is not read", nil)
			if p.seq == head.last {
				p.lines = head.lines
				break
			}
			p.seq, p.lines = p.seq+1, 0
			continue
		}
		if errors.Is(err, fs.ErrNotExist) && p.seq < head.last {
			// pruned since the head was read, or never there
			if err := b.skipMissing(ctx, node, p, head); err != nil {
				return out, head, err
			}
			continue
		}
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return out, head, err
		}
		if p.seq == head.last {
			if len(entries) < head.lines {
				b.warnOnce(node, "lines", "a journal head claims more lines than its segment holds", nil)
			}
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
	return out, head, nil
}

// loadSegment reads the complete lines of one segment, refusing one
// larger than a segment can be.
func (b *storageBackend) loadSegment(ctx context.Context, node string, seq uint64) ([]string, error) {
	data, err := b.load(ctx, b.segmentKey(node, seq), maxSegmentBytes)
	if err != nil {
		return nil, err
	}
	entries := strings.SplitAfter(string(data), "\n")
	if n := len(entries); n > 0 && !strings.HasSuffix(entries[n-1], "\n") {
		entries = entries[:n-1] // a line being written
	}
	return entries, nil
}

// skipMissing moves past a missing segment to the next one that exists,
// found with one listing of the node's folder; when none of the head's
// range is left, the journal is read up to its head, with a warning.
func (b *storageBackend) skipMissing(ctx context.Context, node string, p *journalPeer, head journalHead) error {
	keys, err := b.storage.List(ctx, b.journalDir()+"/"+node, false)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	next := uint64(math.MaxUint64)
	for _, key := range keys {
		if seq, err := strconv.ParseUint(path.Base(key), 10, 64); err == nil && seq > p.seq && seq < next {
			next = seq
		}
	}
	if next > head.last {
		b.warnOnce(node, "range", "a journal head names segments that do not exist", nil)
		p.seq, p.lines = head.last, head.lines
		return nil
	}
	p.seq, p.lines = next, 0
	return nil
}

// warnOnce logs a warning about a node's journal once per node and
// kind of fault.
func (b *storageBackend) warnOnce(node, kind, msg string, err error) {
	if b.warned[node+"\x00"+kind] {
		return
	}
	b.warned[node+"\x00"+kind] = true
	fields := []zap.Field{zap.String("node", node)}
	if err != nil {
		fields = append(fields, zap.Error(err))
	}
	b.opts.Logger.Warn(msg, fields...)
}

// errBadHead is the error of a journal head that cannot be true.
var errBadHead = errors.New("journal head cannot be true")

// loadHead reads a node's journal head.
func (b *storageBackend) loadHead(ctx context.Context, node string) (journalHead, error) {
	data, err := b.load(ctx, b.headKey(node), maxRecordBytes)
	if errors.Is(err, errTooLarge) {
		return journalHead{}, errBadHead
	}
	if err != nil {
		return journalHead{}, err
	}
	return parseHead(string(data))
}

// parseHead reads "<first> <last> <lines> <written> [<remember>]": the
// node's segments first to last, the lines in last, when it was written
// (Unix seconds) and the longest session lifetime of its handler
// (seconds; heads before it have none). A head that cannot be true is
// errBadHead.
func parseHead(s string) (journalHead, error) {
	var h journalHead
	f := strings.Fields(s)
	if len(s) > 128 || len(f) < 4 || len(f) > 5 {
		return h, errBadHead
	}
	var n [5]uint64
	for i, v := range f {
		x, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return h, errBadHead
		}
		n[i] = x
	}
	if n[0] > n[1] || n[1]-n[0] > maxSegments || n[2] > segmentLines || n[3] > lastTime || n[4] > maxRemember {
		return h, errBadHead
	}
	return journalHead{first: n[0], last: n[1], lines: int(n[2]), written: int64(n[3]), remember: time.Duration(n[4]) * time.Second}, nil
}

// parseJournalLine reads "s <session entry>", "r <id> <expires>",
// "u <id> <expires> <used>", "c <account> <counter> <until>" or
// "R <record key> <until>", with the
// time until which the entry matters.
func parseJournalLine(line string) (store.Change, int64, bool) {
	if entry, ok := strings.CutPrefix(line, "s "); ok {
		e, ok := store.ParseEntry(entry)
		return store.Change{Login: &e}, e.Expires.Unix(), ok
	}
	f := strings.Fields(line)
	if len(f) < 3 {
		return store.Change{}, 0, false
	}
	if f[0] == "R" && len(f) == 3 {
		// the record's value is read from its file
		key, err := hex.DecodeString(f[1])
		until, ok := store.ParseTime(f[2])
		return store.Change{Record: string(key)}, until, err == nil && len(key) > 0 && ok
	}
	key, err := hex.DecodeString(f[1])
	if err != nil || len(key) != 16 {
		return store.Change{}, 0, false
	}
	switch {
	case f[0] == "r" && len(f) == 3:
		exp, ok := store.ParseTime(f[2])
		return store.Change{Revoked: true, ID: [16]byte(key), Expires: time.Unix(exp, 0)}, exp, ok
	case f[0] == "u" && len(f) == 4:
		exp, ok1 := store.ParseTime(f[2])
		used, ok2 := store.ParseTime(f[3])
		return store.Change{ID: [16]byte(key), Expires: time.Unix(exp, 0), Used: time.Unix(used, 0)}, exp, ok1 && ok2 && used > 0
	case f[0] == "c" && len(f) == 4:
		n, ok1 := store.ParseCounter(f[2])
		until, ok2 := store.ParseTime(f[3])
		return store.Change{Account: store.AccountID(key), Counter: n}, until, ok1 && ok2
	}
	return store.Change{}, 0, false
}
