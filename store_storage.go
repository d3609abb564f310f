package miniapp

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/certmagic"
)

func init() {
	caddy.RegisterModule(StorageStore{})
}

// StorageStore keeps a realm's shared state in Caddy's configured
// storage (file_system by default, or any storage module), so instances
// that share the storage share sessions. Each instance appends its
// changes to a journal of small segments of its own; the others read
// only the segments and lines they have not seen, so a sync costs what
// changed since the last one, not the whole history. Segments are
// deleted once every entry in them has expired. Changes reach the other
// instances within the handler's revocation_sync.
type StorageStore struct {
	storage certmagic.Storage
}

// CaddyModule returns the Caddy module information.
func (StorageStore) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.miniapp.stores.storage",
		New: func() caddy.Module { return new(StorageStore) },
	}
}

// Provision takes Caddy's configured storage.
func (s *StorageStore) Provision(ctx caddy.Context) error {
	s.storage = ctx.Storage()
	return nil
}

// UnmarshalCaddyfile reads `store storage`, which takes no options.
func (s *StorageStore) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the store's name
	if d.NextArg() || d.NextBlock(0) {
		return d.ArgErr()
	}
	return nil
}

func (s *StorageStore) place() string { return "storage:" + storageID(s.storage) }
func (s *StorageStore) open(_ caddy.Context, opts storeOptions) (backend, error) {
	return &storageBackend{
		storage: s.storage,
		prefix:  realmPath(opts.realm),
		node:    hex.EncodeToString(randomBytes(8)),
		opts:    opts,
		maxExp:  make(map[uint64]int64),
		peers:   make(map[string]*journalPeer),
	}, nil
}

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

// storageBackend is one realm's journal in Caddy's storage.
type storageBackend struct {
	storage certmagic.Storage
	prefix  string
	node    string
	opts    storeOptions

	// this node's journal: segments first to seq, the lines of seq, the
	// latest expiry in each segment, and when the head was last written
	mu        sync.Mutex
	first     uint64
	seq       uint64
	lines     []string
	maxExp    map[uint64]int64
	headWrote time.Time
	unsent    []unsentLine

	// what has been read of the other nodes' journals, by node
	peers map[string]*journalPeer
}

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

// Where a realm's journal, a node's head and segments, and an account's
// sign-out counter are stored. The heads are files of one folder, so a
// sync lists the nodes without reading any folder of segments.
func (b *storageBackend) journalDir() string         { return b.prefix + "/journal" }
func (b *storageBackend) headsDir() string           { return b.journalDir() + "/heads" }
func (b *storageBackend) headKey(node string) string { return b.headsDir() + "/" + node }
func (b *storageBackend) segmentKey(node string, seq uint64) string {
	return fmt.Sprintf("%s/%s/%012d", b.journalDir(), node, seq)
}
func (b *storageBackend) counterKey(a accountID) string {
	return b.prefix + "/signout-counter/" + hex.EncodeToString(a[:])
}

func (b *storageBackend) pollEvery() time.Duration { return b.opts.every }
func (b *storageBackend) close() error             { return nil }

func (b *storageBackend) revoke(ctx context.Context, id [16]byte, expires time.Time) error {
	return b.appendLine(ctx, "r "+hex.EncodeToString(id[:])+" "+strconv.FormatInt(expires.Unix(), 10), expires.Unix())
}

// signOut raises the counter under the storage lock (sign-outs are rare),
// then tells the other nodes through the journal.
func (b *storageBackend) signOut(ctx context.Context, acct accountID, atLeast uint32) (uint32, error) {
	key := b.counterKey(acct)
	if err := b.storage.Lock(ctx, key); err != nil {
		return 0, fmt.Errorf("locking %s: %v", key, err)
	}
	defer func() { _ = b.storage.Unlock(context.WithoutCancel(ctx), key) }()
	stored, err := b.counter(ctx, acct)
	if err != nil {
		return 0, err
	}
	n := max(stored+1, atLeast)
	if err := b.storage.Store(ctx, key, []byte(strconv.FormatUint(uint64(n), 10))); err != nil {
		return 0, fmt.Errorf("storing %s: %v", key, err)
	}
	until := b.opts.clock.now().Add(b.opts.remember).Unix()
	line := fmt.Sprintf("c %s %d %d", hex.EncodeToString(acct[:]), n, until)
	if err := b.appendLine(ctx, line, until); err != nil {
		// the counter is raised: telling the others is retried apart,
		// so a retry never raises it twice
		b.mu.Lock()
		b.unsent = append(b.unsent, unsentLine{line, until})
		b.mu.Unlock()
	}
	return n, nil
}

// unsentLine is a journal entry whose write failed, to be tried again.
type unsentLine struct {
	line string
	exp  int64
}

// sendUnsent retries the journal entries whose write failed.
func (b *storageBackend) sendUnsent(ctx context.Context) error {
	return retryInOrder(&b.mu, &b.unsent, func(u unsentLine) error { return b.appendLine(ctx, u.line, u.exp) })
}

func (b *storageBackend) counter(ctx context.Context, acct accountID) (uint32, error) {
	value, err := b.storage.Load(ctx, b.counterKey(acct))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseUint(string(value), 10, 32)
	if err != nil {
		return 0, fmt.Errorf("%s: sign-out counter is not a number", b.counterKey(acct))
	}
	return uint32(n), nil
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
	return b.writeHead(ctx)
}

// writeHead stores this node's head; b.mu is held.
func (b *storageBackend) writeHead(ctx context.Context) error {
	now := b.opts.clock.now()
	head := fmt.Sprintf("%d %d %d %d", b.first, b.seq, len(b.lines), now.Unix())
	if err := b.storage.Store(ctx, b.headKey(b.node), []byte(head)); err != nil {
		return fmt.Errorf("storing journal head: %v", err)
	}
	b.headWrote = now
	return nil
}

// changes reads what the other nodes' journals hold beyond what was read
// before (everything on the first call), and tends this node's journal:
// expired segments go, the head is kept fresh, orphans are removed.
func (b *storageBackend) changes(ctx context.Context) ([]change, error) {
	errs := []error{b.sendUnsent(ctx), b.tend(ctx)}
	nodes, err := b.storage.List(ctx, b.headsDir(), false)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("listing %s: %v", b.headsDir(), err)
	}
	var out []change
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
func (b *storageBackend) readPeer(ctx context.Context, node string, out []change) ([]change, error) {
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
	now := b.opts.clock.now()
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

// parseJournalLine reads "r <id> <expires>" or "c <account> <counter>
// <until>", with the time until which the entry matters.
func parseJournalLine(line string) (change, int64, bool) {
	f := strings.Fields(line)
	if len(f) < 3 {
		return change{}, 0, false
	}
	key, err := hex.DecodeString(f[1])
	if err != nil || len(key) != 16 {
		return change{}, 0, false
	}
	switch {
	case f[0] == "r" && len(f) == 3:
		exp, err := strconv.ParseInt(f[2], 10, 64)
		return change{revoked: true, id: [16]byte(key), expires: time.Unix(exp, 0)}, exp, err == nil
	case f[0] == "c" && len(f) == 4:
		n, err1 := strconv.ParseUint(f[2], 10, 32)
		until, err2 := strconv.ParseInt(f[3], 10, 64)
		return change{acct: accountID(key), counter: uint32(n)}, until, err1 == nil && err2 == nil
	}
	return change{}, 0, false
}

// tend deletes this node's segments whose entries have all expired and
// keeps its head fresh, so others do not take it for an orphan.
func (b *storageBackend) tend(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.headWrote.IsZero() {
		return nil // no journal yet
	}
	now := b.opts.clock.now()
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

// Interface guards
var (
	_ caddy.Provisioner     = (*StorageStore)(nil)
	_ caddyfile.Unmarshaler = (*StorageStore)(nil)
	_ storeModule           = (*StorageStore)(nil)
	_ backend               = (*storageBackend)(nil)
)
