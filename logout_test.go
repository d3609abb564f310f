package miniapp

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/session"
	"github.com/caddy-miniapp/miniapp/internal/testredis"
	"github.com/caddy-miniapp/miniapp/store"
	redisstore "github.com/caddy-miniapp/miniapp/store/redis"
	"github.com/caddy-miniapp/miniapp/store/storage"
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"
	goredis "github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// TestRevocationsExpire keeps a revocation through a sync of the store
// (store's TestRealmExpire drops it once its session would have expired).
func TestRevocationsExpire(t *testing.T) {
	a := newApp(t, "", nil)
	c := a.login("ada", adaPassword, false)
	s, _ := a.open(c.Value)
	a.do(request{method: "POST", target: "/logout", cookie: c})
	ctx := context.Background()
	if err := a.h.app.Shared.Sync(ctx); err != nil || !a.h.app.Shared.Revoked(a.id("ada"), s.ID, s.Expires, s.Counter, s.Generation) {
		t.Fatalf("revocation lost by sync: %v", err)
	}
}

// TestRevocationsFromOtherInstance checks that a logout and a sign out
// everywhere written to the shared storage by another instance are in
// force here after a sync.
func TestRevocationsFromOtherInstance(t *testing.T) {
	a := newApp(t, "", nil)
	c := a.login("ada", adaPassword, false)
	s, _ := a.open(c.Value)
	other := openNode(t, a.storage, a.h.clock)
	ctx := context.Background()
	if err := other.Revoke(ctx, s.ID, s.Expires); err != nil {
		t.Fatal(err)
	}
	if _, err := other.SignOut(ctx, a.id("grace"), 0); err != nil {
		t.Fatal(err)
	}
	if w := a.do(request{target: "/profile", cookie: c}); w.Code != 200 {
		t.Fatalf("before sync: %d", w.Code)
	}
	if err := a.h.app.Shared.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if w := a.do(request{target: "/profile", cookie: c}); w.Code != 401 {
		t.Errorf("after sync: %d", w.Code)
	}
	if counter := a.h.app.Shared.Counter(ctx, a.id("grace")); counter != 1 {
		t.Errorf("sign out everywhere of another instance not read")
	}
}

// flakyStorage is a file storage that fails every call while down.
type flakyStorage struct {
	*certmagic.FileStorage
	down atomic.Bool
}

var errStorageDown = errors.New("storage is down")

func (f *flakyStorage) Store(ctx context.Context, key string, value []byte) error {
	if f.down.Load() {
		return errStorageDown
	}
	return f.FileStorage.Store(ctx, key, value)
}

func (f *flakyStorage) Load(ctx context.Context, key string) ([]byte, error) {
	if f.down.Load() {
		return nil, errStorageDown
	}
	return f.FileStorage.Load(ctx, key)
}

func (f *flakyStorage) List(ctx context.Context, prefix string, recursive bool) ([]string, error) {
	if f.down.Load() {
		return nil, errStorageDown
	}
	return f.FileStorage.List(ctx, prefix, recursive)
}

func (f *flakyStorage) Lock(ctx context.Context, name string) error {
	if f.down.Load() {
		return errStorageDown
	}
	return f.FileStorage.Lock(ctx, name)
}

// provisionOn provisions a handler with the test accounts and a key
// generated in storage.
func provisionOn(t *testing.T, storage certmagic.Storage, change func(*Handler)) (*Handler, *observer.ObservedLogs) {
	t.Helper()
	h := &Handler{Accounts: testAccounts()}
	if change != nil {
		change(h)
	}
	core, logs := observer.New(zap.DebugLevel)
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := h.provision(ctx, storage, zap.New(core)); err != nil {
		t.Fatalf("provision: %v", err)
	}
	t.Cleanup(func() { _ = h.Cleanup() })
	return h, logs
}

// TestStorageDown: while the storage fails nobody is signed out, logins
// and logouts work, a reload keeps the key, and the logouts made meanwhile
// reach the storage once it is back.
func TestStorageDown(t *testing.T) {
	storage := &flakyStorage{FileStorage: &certmagic.FileStorage{Path: t.TempDir()}}
	h, logs := provisionOn(t, storage, nil)
	a := &testApp{t: t, h: h, logs: logs, storage: storage, ip: nextIP()}
	before := a.login("ada", adaPassword, false)

	storage.down.Store(true)
	if w := a.do(request{target: "/profile", cookie: before}); w.Code != 200 {
		t.Fatalf("profile while storage is down: %d", w.Code)
	}
	during := a.login("grace", gracePassword, false)
	w := a.do(request{method: "POST", target: "/logout", cookie: before})
	if w.Code != 303 {
		t.Fatalf("logout while storage is down: %d", w.Code)
	}
	if w := a.do(request{target: "/profile", cookie: before}); w.Code != 401 {
		t.Fatalf("logout not in force while storage is down: %d", w.Code)
	}
	if err := h.app.Shared.Sync(context.Background()); err == nil {
		t.Fatal("sync reported no error while storage is down")
	}
	if logs.FilterMessageSnippet("will retry").Len() == 0 {
		t.Error("failed revocation write not logged")
	}

	// a reload while the storage is down keeps the key and the sessions
	reloaded, _ := provisionOn(t, storage, nil)
	b := &testApp{t: t, h: reloaded, logs: logs, storage: storage, ip: nextIP()}
	if w := b.do(request{target: "/profile", cookie: during}); w.Code != 200 {
		t.Errorf("session lost by a reload while storage is down: %d", w.Code)
	}
	if w := b.do(request{target: "/profile", cookie: before}); w.Code != 401 {
		t.Errorf("logout lost by a reload while storage is down: %d", w.Code)
	}

	storage.down.Store(false)
	if err := h.app.Shared.Sync(context.Background()); err != nil {
		t.Fatalf("sync after storage is back: %v", err)
	}
	// another instance, started now, reads the logout made meanwhile
	later := openNode(t, storage.FileStorage, h.clock)
	changes, err := later.Changes(context.Background())
	changes = revokedOnly(changes)
	s, _ := a.open(before.Value)
	if err != nil || len(changes) != 1 || !changes[0].Revoked || changes[0].ID != s.ID {
		t.Fatalf("pending revocation not written once storage is back: %+v %v", changes, err)
	}
}

func TestSignOutEverywhere(t *testing.T) {
	dir := t.TempDir()
	a := newApp(t, dir, nil)
	phone := a.login("ada", adaPassword, false)
	laptop := a.login("ada", adaPassword, false)
	grace := a.login("grace", gracePassword, false)
	w := a.do(request{method: "POST", target: "/logout", cookie: phone, contentType: form, body: "all=1"})
	if w.Code != 303 {
		t.Fatalf("logout all: %d", w.Code)
	}
	for name, c := range map[string]*http.Cookie{"phone": phone, "laptop": laptop} {
		if w := a.do(request{target: "/profile", cookie: c}); w.Code != 401 {
			t.Errorf("%s session survived sign out everywhere: %d", name, w.Code)
		}
	}
	if w := a.do(request{target: "/profile", cookie: grace}); w.Code != 200 {
		t.Errorf("another user's session ended: %d", w.Code)
	}
	fresh := a.login("ada", adaPassword, false)
	if w := a.do(request{target: "/profile", cookie: fresh}); w.Code != 200 {
		t.Errorf("login after sign out everywhere refused: %d", w.Code)
	}
	// another instance on the same storage, started afterwards
	if err := a.h.Cleanup(); err != nil {
		t.Fatal(err)
	}
	b := newApp(t, dir, nil)
	if w := b.do(request{target: "/profile", cookie: laptop}); w.Code != 401 {
		t.Errorf("sign out everywhere lost on restart: %d", w.Code)
	}
	if w := b.do(request{target: "/profile", cookie: fresh}); w.Code != 200 {
		t.Errorf("fresh session refused after restart: %d", w.Code)
	}
	page := a.do(request{target: "/profile", cookie: fresh, accept: "text/html"}).Body.String()
	if !strings.Contains(page, `name="all" value="1"`) {
		t.Error("the profile page offers no sign out of all devices")
	}
}

// TestLongNameSignOutDurable: a user name of 200 bytes signs out
// everywhere durably, as its storage key has a fixed length.
func TestLongNameSignOutDurable(t *testing.T) {
	dir := t.TempDir()
	long := strings.Repeat("é", 100)
	accounts := func(h *Handler) { h.Accounts = []Account{{Username: long, Password: adaHash}} }
	a := newApp(t, dir, accounts)
	c := a.login(url.QueryEscape(long), adaPassword, false)
	a.do(request{method: "POST", target: "/logout", cookie: c, contentType: form, body: "all=1"})
	if err := a.h.Cleanup(); err != nil {
		t.Fatal(err)
	}
	keys, err := a.storage.List(context.Background(), "miniapp/miniapp/signout-counter", false)
	if err != nil || len(keys) != 1 || len(path.Base(keys[0])) != 32 {
		t.Fatalf("sign-out counter key: %v %v", keys, err)
	}
	b := newApp(t, dir, accounts)
	if counter := b.h.app.Shared.Counter(context.Background(), b.id(long)); counter != 1 {
		t.Errorf("sign out everywhere of a 200-byte name lost on restart: counter %d", counter)
	}
}

// TestPendingOutlivesItsList: a logout made while the storage is down
// and still pending when a reload replaces the list (a changed
// revocation_sync) is in force in the new list and written by it once
// the storage is back.
func TestPendingOutlivesItsList(t *testing.T) {
	storage := &flakyStorage{FileStorage: &certmagic.FileStorage{Path: t.TempDir()}}
	old, logs := provisionOn(t, storage, nil)
	a := &testApp{t: t, h: old, logs: logs, storage: storage, ip: nextIP()}
	c := a.login("ada", adaPassword, false)
	storage.down.Store(true)
	a.do(request{method: "POST", target: "/logout", cookie: c})

	reloaded, _ := provisionOn(t, storage, func(h *Handler) { h.RevocationSync = caddy.Duration(5 * time.Second) })
	if reloaded.app.Shared == old.app.Shared {
		t.Fatal("the reload kept the list; it should have made a new one")
	}
	if err := old.Cleanup(); err != nil {
		t.Fatal(err)
	}
	storage.down.Store(false)
	if err := reloaded.app.Shared.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	b := &testApp{t: t, h: reloaded, logs: logs, storage: storage, ip: nextIP()}
	if w := b.do(request{target: "/profile", cookie: c}); w.Code != 401 {
		t.Errorf("logout lost when its list was replaced: %d", w.Code)
	}
	s, _ := a.open(c.Value)
	changes, err := openNode(t, storage.FileStorage, a.h.clock).Changes(context.Background())
	if changes = revokedOnly(changes); err != nil || len(changes) != 1 || changes[0].ID != s.ID {
		t.Errorf("the logout was not written by the new list: %+v %v", changes, err)
	}
}

// revokedOnly keeps the revocations of a store's changes, leaving out
// the logins.
func revokedOnly(changes []store.Change) []store.Change {
	return slices.DeleteFunc(changes, func(c store.Change) bool { return !c.Revoked })
}

// openNode opens the default realm's journal on storage as a node of
// its own.
func openNode(t testing.TB, st certmagic.Storage, clk *session.Clock) store.Backend {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	b, err := storage.New(st).Open(ctx, store.Options{
		Realm: defaultRealm, Every: time.Second, Remember: 12 * time.Hour, Now: clk.Now, Logger: zap.NewNop(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRedisDown: while Redis is down nobody is signed out, logins and
// logouts work, a reload keeps the logout made meanwhile, and it reaches
// Redis once Redis is back.
func TestRedisDown(t *testing.T) {
	r := testredis.Start(t)
	withRedis := func(h *Handler) {
		st := &redisstore.Store{Address: []string{r.Addr}}
		if err := st.Provision(caddy.Context{}); err != nil {
			t.Fatal(err)
		}
		h.store = st
	}
	a := newApp(t, "", withRedis)
	before := a.login("ada", adaPassword, false)

	r.Stop()
	if w := a.do(request{target: "/profile", cookie: before}); w.Code != 200 {
		t.Fatalf("profile while Redis is down: %d", w.Code)
	}
	during := a.login("grace", gracePassword, false)
	if w := a.do(request{method: "POST", target: "/logout", cookie: before}); w.Code != 303 {
		t.Fatalf("logout while Redis is down: %d", w.Code)
	}
	if w := a.do(request{target: "/profile", cookie: before}); w.Code != 401 {
		t.Fatalf("logout not in force while Redis is down: %d", w.Code)
	}

	reloaded := newApp(t, "", withRedis)
	if w := reloaded.do(request{target: "/profile", cookie: during}); w.Code != 200 {
		t.Errorf("session lost by a reload while Redis is down: %d", w.Code)
	}
	if w := reloaded.do(request{target: "/profile", cookie: before}); w.Code != 401 {
		t.Errorf("logout lost by a reload while Redis is down: %d", w.Code)
	}

	r.Start()
	if err := a.h.app.Shared.Sync(context.Background()); err != nil {
		// the first command may meet a connection to the old server
		if err = a.h.app.Shared.Sync(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	s, _ := a.open(before.Value)
	changes, err := openRedisNode(t, r.Addr, a.h.clock).Changes(context.Background())
	if changes = revokedOnly(changes); err != nil || len(changes) != 1 || changes[0].ID != s.ID {
		t.Errorf("the logout made while Redis was down did not reach it: %+v %v", changes, err)
	}
}

// openRedisNode opens the default realm in the test's Redis as a node
// of its own.
func openRedisNode(t testing.TB, addr string, clk *session.Clock) store.Backend {
	t.Helper()
	st := &redisstore.Store{Address: []string{addr}}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := st.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	b, err := st.Open(ctx, store.Options{Realm: defaultRealm, Every: time.Second, Remember: 12 * time.Hour, Now: clk.Now, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// TestStoreLostData: a store that loses its data (a Redis FLUSHALL, a
// storage folder emptied) revives no logged-out session, whether the
// loss comes while the node runs or while it is down: every session
// issued before is refused, with one error logged, and new logins work.
func TestStoreLostData(t *testing.T) {
	type place struct {
		use  func(*Handler)
		wipe func()
	}
	places := map[string]func(t *testing.T, dir string) place{
		"storage": func(t *testing.T, dir string) place {
			return place{func(*Handler) {}, func() {
				if err := os.RemoveAll(filepath.Join(dir, "miniapp")); err != nil {
					t.Fatal(err)
				}
			}}
		},
		"redis": func(t *testing.T, dir string) place {
			r := testredis.Start(t)
			return place{func(h *Handler) {
				st := &redisstore.Store{Address: []string{r.Addr}}
				if err := st.Provision(caddy.Context{}); err != nil {
					t.Fatal(err)
				}
				h.store = st
			}, func() {
				c := goredis.NewClient(&goredis.Options{Addr: r.Addr})
				defer func() { _ = c.Close() }()
				if err := c.FlushAll(context.Background()).Err(); err != nil {
					t.Fatal(err)
				}
			}}
		},
	}
	for name, open := range places {
		for _, down := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/down=%v", name, down), func(t *testing.T) {
				dir := t.TempDir()
				p := open(t, dir)
				a := newApp(t, dir, p.use)
				out, kept := a.login("ada", adaPassword, false), a.login("grace", gracePassword, false)
				a.do(request{method: "POST", target: "/logout", cookie: out})
				if w := a.do(request{target: "/profile", cookie: out}); w.Code != 401 {
					t.Fatalf("logged out: %d", w.Code)
				}
				node := a
				if down {
					if err := a.h.Cleanup(); err != nil {
						t.Fatal(err)
					}
					p.wipe()
					node = newApp(t, dir, p.use)
				} else {
					p.wipe()
					if err := a.h.app.Shared.Sync(context.Background()); err != nil {
						t.Fatal(err)
					}
					if a.logs.FilterMessageSnippet("lost the realm's data").Len() != 1 {
						t.Errorf("the loss was not logged once: %v", a.logs.All())
					}
				}
				for what, c := range map[string]*http.Cookie{"the logged-out session": out, "a live session": kept} {
					if w := node.do(request{target: "/profile", cookie: c}); w.Code != 401 {
						t.Errorf("%s after the store lost its data: %d", what, w.Code)
					}
				}
				fresh := node.login("ada", adaPassword, false)
				if w := node.do(request{target: "/profile", cookie: fresh}); w.Code != 200 {
					t.Errorf("a login after the loss: %d", w.Code)
				}
			})
		}
	}
}

// TestRedisConfigRefused: a Redis that answers but refuses the
// configured password refuses the handler's config, with a message that
// names the cause and not the password.
func TestRedisConfigRefused(t *testing.T) {
	const password = "correct-Horse-9"
	r := testredis.Start(t, "--requirepass", password)
	st := &redisstore.Store{Address: []string{r.Addr}, Password: "{env.MINIAPP_TEST_REDIS_PASSWORD}"}
	t.Setenv("MINIAPP_TEST_REDIS_PASSWORD", "wrong-"+password)
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	if err := st.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	h := &Handler{Accounts: testAccounts(), SecretKeys: []string{testKey}, store: st}
	defer func() { _ = h.Cleanup() }()
	err := h.provision(ctx, &certmagic.FileStorage{Path: t.TempDir()}, zap.NewNop())
	if err == nil || !strings.Contains(err.Error(), "refused the credentials: WRONGPASS") || strings.Contains(err.Error(), password) {
		t.Errorf("provision with a wrong Redis password: %v", err)
	}
}
