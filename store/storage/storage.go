// Package storage is the store backend `storage`: a realm's shared state
// in Caddy's configured storage, as a journal of small segments per
// instance. It registers the guest module
// http.handlers.miniapp.stores.storage; it knows the store package's
// interface and Caddy's storage, nothing of the handler.
package storage

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/caddy-miniapp/miniapp/store"
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
)

func init() {
	caddy.RegisterModule(Store{})
}

// Store keeps a realm's shared state in Caddy's configured
// storage (file_system by default, or any storage module), so instances
// that share the storage share sessions. Each instance appends its
// changes to a journal of small segments of its own; the others read
// only the segments and lines they have not seen, so a sync costs what
// changed since the last one, not the whole history. Segments are
// deleted once every entry in them has expired. Changes reach the other
// instances within the handler's revocation_sync.
type Store struct {
	storage certmagic.Storage
}

// CaddyModule returns the Caddy module information.
func (Store) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.miniapp.stores.storage",
		New: func() caddy.Module { return new(Store) },
	}
}

// Provision takes Caddy's configured storage.
func (s *Store) Provision(ctx caddy.Context) error {
	s.storage = ctx.Storage()
	return nil
}

// UnmarshalCaddyfile reads `store storage`, which takes no options.
func (s *Store) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the store's name
	if d.NextArg() || d.NextBlock(0) {
		return d.ArgErr()
	}
	return nil
}

// New returns the store on a storage, as Provision makes it.
func New(storage certmagic.Storage) *Store { return &Store{storage: storage} }

// Place names the storage by its type and configuration, so that
// handlers of successive configs find the state kept for it.
func (s *Store) Place() string { return fmt.Sprintf("storage:%T:%v", s.storage, s.storage) }

// Open makes the realm's journal on the storage.
func (s *Store) Open(_ caddy.Context, opts store.Options) (store.Backend, error) {
	return &storageBackend{
		storage:  s.storage,
		prefix:   realmPath(opts.Realm),
		node:     hex.EncodeToString(random(8)),
		opts:     opts,
		maxExp:   make(map[uint64]int64),
		peers:    make(map[string]*journalPeer),
		warned:   make(map[string]bool),
		strikes:  make(map[string]strikes),
		remember: opts.Remember,
	}, nil
}

// storageBackend is one realm's journal in Caddy's storage.
type storageBackend struct {
	storage certmagic.Storage
	prefix  string
	node    string
	opts    store.Options

	// this node's journal: segments first to seq, the lines of seq, the
	// latest expiry in each segment, and when the head was last written
	mu        sync.Mutex
	first     uint64
	seq       uint64
	lines     []string
	maxExp    map[uint64]int64
	headWrote time.Time
	unsent    []unsentLine
	// the entries waiting for the next journal write, and whether one
	// is under way (appendLine)
	queueMu sync.Mutex
	queued  []queuedLine
	writing bool
	// wrote is set by an append since the last read of changes
	wrote bool

	// what has been read of the other nodes' journals, by node; the
	// latest change seen when they were last all read, and when
	peers   map[string]*journalPeer
	latest  string
	readAll time.Time
	// generation is the realm's generation reported last
	generation store.Generation
	// warned holds the faults of other nodes' journals logged once
	warned map[string]bool
	// remember is how long a sign-out must stay in the journal: the
	// longest session lifetime this node and the others announce in
	// their heads; b.mu guards it
	remember time.Duration

	// recordMu makes this node's record swaps one at a time
	recordMu sync.Mutex
	// recordsRead is set once every record has been read
	recordsRead bool
	// strikes are the failures counted on this node, by key
	strikeMu sync.Mutex
	strikes  map[string]strikes
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
func (b *storageBackend) counterKey(a store.AccountID) string {
	return b.prefix + "/signout-counter/" + hex.EncodeToString(a[:])
}

func (b *storageBackend) PollEvery() time.Duration { return b.opts.Every }
func (b *storageBackend) Close() error             { return nil }

func (b *storageBackend) Login(ctx context.Context, e store.Entry) error {
	return b.appendLine(ctx, "s "+e.String(), e.Expires.Unix())
}

func (b *storageBackend) Revoke(ctx context.Context, id [16]byte, expires time.Time) error {
	return b.appendLine(ctx, "r "+hex.EncodeToString(id[:])+" "+strconv.FormatInt(expires.Unix(), 10), expires.Unix())
}

// Use appends the session's last use to the journal.
func (b *storageBackend) Use(ctx context.Context, id [16]byte, expires, at time.Time) error {
	return b.appendLine(ctx, fmt.Sprintf("u %x %d %d", id, expires.Unix(), at.Unix()), expires.Unix())
}

// SignOut raises the counter under the storage lock (sign-outs are rare),
// then tells the other nodes through the journal.
func (b *storageBackend) SignOut(ctx context.Context, acct store.AccountID, atLeast uint32) (uint32, error) {
	key := b.counterKey(acct)
	if err := b.storage.Lock(ctx, key); err != nil {
		return 0, fmt.Errorf("locking %s: %v", key, err)
	}
	defer func() { _ = b.storage.Unlock(context.WithoutCancel(ctx), key) }()
	stored, err := b.Counter(ctx, acct)
	if err != nil {
		return 0, err
	}
	if stored >= store.MaxCounter {
		stored = 0 // cannot be raised: refused like a forged cookie
	}
	n := max(stored+1, atLeast)
	if err := b.storage.Store(ctx, key, []byte(strconv.FormatUint(uint64(n), 10))); err != nil {
		return 0, fmt.Errorf("storing %s: %v", key, err)
	}
	b.mu.Lock()
	until := b.opts.Now().Add(b.remember).Unix()
	b.mu.Unlock()
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
	return store.RetryInOrder(&b.mu, &b.unsent, func(u unsentLine) error { return b.appendLine(ctx, u.line, u.exp) })
}

func (b *storageBackend) Counter(ctx context.Context, acct store.AccountID) (uint32, error) {
	value, err := b.load(ctx, b.counterKey(acct), maxRecordBytes)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	n, ok := store.ParseCounter(string(value))
	if !ok {
		// refused like a forged cookie: as if the account never signed out
		b.opts.Logger.Warn("a sign-out counter that cannot be true; it is ignored", zap.String("key", b.counterKey(acct)))
		return 0, nil
	}
	return n, nil
}

// maxRecordBytes bounds the small files a sync or a login reads (the
// latest entry, heads, counters, device lists, the generation, the key
// set): files on a shared disk are input like any other.
const maxRecordBytes = 16 << 10

// errTooLarge is the error of a file larger than it can be.
var errTooLarge = errors.New("larger than it can be")

// load reads a file of at most limit bytes: a larger one is an error,
// and is not read whole.
func (b *storageBackend) load(ctx context.Context, key string, limit int64) ([]byte, error) {
	info, err := b.storage.Stat(ctx, key)
	if err != nil {
		return nil, err
	}
	if info.Size > limit {
		return nil, fmt.Errorf("%s: %w", key, errTooLarge)
	}
	data, err := b.storage.Load(ctx, key)
	if err == nil && int64(len(data)) > limit {
		return nil, fmt.Errorf("%s: %w", key, errTooLarge) // grown since
	}
	return data, err
}

// devicesKey is where an account's known devices are kept.
func (b *storageBackend) devicesKey(a store.AccountID) string {
	return b.prefix + "/devices/" + hex.EncodeToString(a[:])
}

// AddDevice rewrites the account's list of known devices with this one
// newest. Two nodes writing at once may lose one's device, which is
// then not known: a login of it waits with the anonymous ones.
func (b *storageBackend) AddDevice(ctx context.Context, acct store.AccountID, id [16]byte, until time.Time) error {
	devices, err := b.devices(ctx, acct)
	if err != nil {
		return err
	}
	devices = slices.DeleteFunc(devices, func(d knownDevice) bool { return d.id == id })
	devices = append(devices, knownDevice{id, until.Unix()})
	devices = devices[max(0, len(devices)-store.MaxDevices):]
	var text strings.Builder
	for _, d := range devices {
		fmt.Fprintf(&text, "%x %d\n", d.id, d.until)
	}
	return b.storage.Store(ctx, b.devicesKey(acct), []byte(text.String()))
}

// HasDevice looks the device up in the account's list.
func (b *storageBackend) HasDevice(ctx context.Context, acct store.AccountID, id [16]byte) (bool, error) {
	devices, err := b.devices(ctx, acct)
	return slices.ContainsFunc(devices, func(d knownDevice) bool { return d.id == id }), err
}

// knownDevice is a device in an account's list, known until a time.
type knownDevice struct {
	id    [16]byte
	until int64
}

// devices reads the account's known devices, oldest first, leaving out
// the expired ones and any line that cannot be true.
func (b *storageBackend) devices(ctx context.Context, acct store.AccountID) ([]knownDevice, error) {
	data, err := b.load(ctx, b.devicesKey(acct), maxRecordBytes)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	now := b.opts.Now().Unix()
	var out []knownDevice
	for line := range strings.Lines(string(data)) {
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		id, err := hex.DecodeString(f[0])
		until, ok := store.ParseTime(f[1])
		if err == nil && len(id) == 16 && ok && until > now {
			out = append(out, knownDevice{[16]byte(id), until})
		}
	}
	return out[max(0, len(out)-store.MaxDevices):], nil
}

// Interface guards
var (
	_ caddy.Provisioner     = (*Store)(nil)
	_ caddyfile.Unmarshaler = (*Store)(nil)
	_ store.Module          = (*Store)(nil)
	_ store.Backend         = (*storageBackend)(nil)
)

// realmPath is the storage folder of a realm.
func realmPath(realm string) string { return "miniapp/" + realm }

// random returns n bytes from the system's secure random source.
func random(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails; crashes the program if the source does
	return b
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
