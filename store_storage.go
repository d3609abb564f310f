package miniapp

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
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

	// what has been read of the other nodes' journals, by node; the
	// latest change seen when they were last all read, and when
	peers   map[string]*journalPeer
	latest  string
	readAll time.Time
}

// Where a realm's journal, a node's head and segments, and an account's
// sign-out counter are stored. The heads are files of one folder, so a
// sync lists the nodes without reading any folder of segments. The
// latest file names the last entry any node appended, so an idle sync
// reads one small file and nothing else.
func (b *storageBackend) journalDir() string         { return b.prefix + "/journal" }
func (b *storageBackend) latestKey() string          { return b.journalDir() + "/latest" }
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

func (b *storageBackend) login(ctx context.Context, e sessionEntry) error {
	return b.appendLine(ctx, "s "+e.String(), e.expires.Unix())
}

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

// Interface guards
var (
	_ caddy.Provisioner     = (*StorageStore)(nil)
	_ caddyfile.Unmarshaler = (*StorageStore)(nil)
	_ storeModule           = (*StorageStore)(nil)
	_ backend               = (*storageBackend)(nil)
)
