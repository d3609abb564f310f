package storage

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
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
