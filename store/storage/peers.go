package storage

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/caddy-miniapp/miniapp/store"
	"go.uber.org/zap"
)

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
