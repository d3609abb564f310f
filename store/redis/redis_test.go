package redis

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/caddy-miniapp/miniapp/internal/session"
	"github.com/caddy-miniapp/miniapp/internal/testport"
	"github.com/caddy-miniapp/miniapp/internal/testredis"
	"github.com/caddy-miniapp/miniapp/store"
	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// openBackend opens the default realm in the test's Redis.
func openBackend(t testing.TB, addr string, clk *session.Clock) *redisBackend {
	t.Helper()
	return openStore(t, &Store{Address: []string{addr}}, clk)
}

// openStore opens the default realm in the store as configured.
func openStore(t testing.TB, st *Store, clk *session.Clock) *redisBackend {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := st.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	b, err := st.Open(ctx, store.Options{Realm: "miniapp", Every: time.Second, Remember: 12 * time.Hour, Now: clk.Now, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b.(*redisBackend)
}

// random returns n random bytes.
func random(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// TestRedisTrim: the stream is trimmed by the longest session lifetime
// any site of the realm announces, so a site with a short lifetime keeps
// the changes of one with a long lifetime; a revocation of an expired
// session is not written at all.
func TestRedisTrim(t *testing.T) {
	r := testredis.Start(t)
	clk := new(session.Clock)
	long, short := openBackend(t, r.Addr, clk), openBackend(t, r.Addr, clk)
	short.opts.Remember = 3 * time.Second
	ctx := context.Background()
	// more than one node of the stream's radix tree, which trimming
	// removes whole
	for range 300 {
		if err := long.Revoke(ctx, [16]byte(random(16)), clk.Now().Add(12*time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	clk.Advance(time.Minute)
	if err := short.Revoke(ctx, [16]byte(random(16)), clk.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if n, err := long.client.XLen(ctx, long.stream).Result(); err != nil || n != 301 {
		t.Errorf("the stream holds %d entries (%v) after a short-lived site's write, want all 301", n, err)
	}
	if ttl, err := long.client.PTTL(ctx, long.base+"remember").Result(); err != nil || ttl < 11*time.Hour || ttl > 12*time.Hour {
		t.Errorf("the realm's longest lifetime lives %v (%v), want about 12h", ttl, err)
	}
	if err := long.Revoke(ctx, [16]byte(random(16)), clk.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	if n, _ := long.client.XLen(ctx, long.stream).Result(); n != 301 {
		t.Errorf("stream holds %d entries; an expired session's revocation needs none", n)
	}
	// once the long-lived site has written nothing for its lifetime, the
	// short one trims by its own
	if err := long.client.Del(ctx, long.base+"remember").Err(); err != nil {
		t.Fatal(err)
	}
	if err := short.Revoke(ctx, [16]byte(random(16)), clk.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if n, _ := long.client.XLen(ctx, long.stream).Result(); n >= 300 {
		t.Errorf("stream holds %d entries; trimmed by the short lifetime alone it keeps the last few", n)
	}
}

// TestRedisImpossibleValues: a sign-out counter at the top of its range,
// stored or in the stream, is refused like a forged cookie: a sign-out
// raises from 0 instead of wrapping, and the stream entry is not read.
func TestRedisImpossibleValues(t *testing.T) {
	r := testredis.Start(t)
	clk := new(session.Clock)
	b, reader := openBackend(t, r.Addr, clk), openBackend(t, r.Addr, clk)
	ctx := context.Background()
	acct := store.AccountID(random(16))
	key := fmt.Sprintf("%ssignout:%x", b.base, acct)
	if err := b.client.Set(ctx, key, "4294967295", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := b.Counter(ctx, acct); err != nil || n != 0 {
		t.Errorf("an impossible stored counter read as %d, %v", n, err)
	}
	if n, err := b.SignOut(ctx, acct, 1); err != nil || n != 1 {
		t.Errorf("sign-out over an impossible counter: %d, %v; want 1", n, err)
	}
	// one at the limit cannot be raised: refused likewise
	if err := b.client.Set(ctx, key, store.MaxCounter, 0).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := b.SignOut(ctx, acct, 3); err != nil || n != 3 {
		t.Errorf("sign-out over a counter at the limit: %d, %v; want 3", n, err)
	}
	_, _ = reader.Changes(ctx)
	if err := b.client.XAdd(ctx, &goredis.XAddArgs{Stream: b.stream, Values: []any{"k", "c", "i", fmt.Sprintf("%x", acct), "v", "4294967295"}}).Err(); err != nil {
		t.Fatal(err)
	}
	if err := b.client.XAdd(ctx, &goredis.XAddArgs{Stream: b.stream, Values: []any{"k", "r", "i", fmt.Sprintf("%x", acct), "v", "99999999999999"}}).Err(); err != nil {
		t.Fatal(err)
	}
	changes, err := reader.Changes(ctx)
	if err != nil || len(changes) != 0 {
		t.Errorf("impossible stream entries read as %+v, %v", changes, err)
	}
}

// TestRedisLostData: when Redis loses its data and starts its stream
// again, a node still reads the new entries.
func TestRedisLostData(t *testing.T) {
	r := testredis.Start(t)
	clk := new(session.Clock)
	writer, reader := openBackend(t, r.Addr, clk), openBackend(t, r.Addr, clk)
	ctx := context.Background()
	for range 3 {
		_ = writer.Revoke(ctx, [16]byte(random(16)), clk.Now().Add(time.Hour))
	}
	if changes, err := reader.Changes(ctx); err != nil || len(withoutGeneration(changes)) != 3 {
		t.Fatalf("first read: %d %v", len(changes), err)
	}
	r.Stop()
	if err := os.RemoveAll(filepath.Join(r.Dir, "appendonlydir")); err != nil {
		t.Fatal(err)
	}
	r.Start()
	id := [16]byte(random(16))
	if err := writer.Revoke(ctx, id, clk.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	var changes []store.Change
	for range 3 { // a read may fail once on a connection of the old server
		more, err := reader.Changes(ctx)
		changes = append(changes, withoutGeneration(more)...)
		if err == nil && len(changes) > 0 {
			break
		}
	}
	if len(changes) != 1 || changes[0].ID != id {
		t.Errorf("after Redis lost its data: %+v; want the new revocation", changes)
	}
}

// withoutGeneration leaves out the generation a first read reports.
func withoutGeneration(changes []store.Change) []store.Change {
	return slices.DeleteFunc(changes, func(c store.Change) bool { return c.Generation != 0 })
}

// TestRedisConfigErrors: a Redis that answers but refuses the
// configuration is a configuration error naming the cause and never the
// password; a Redis that does not answer is an outage, and opens.
func TestRedisConfigErrors(t *testing.T) {
	const password = "s3cret-Pa55"
	locked := testredis.Start(t, "--requirepass", password)
	plain := testredis.Start(t)
	closed := fmt.Sprintf("127.0.0.1:%d", testport.Free(t))
	for _, tc := range []struct {
		name  string
		store Store
		want  string
	}{
		{"wrong password", Store{Address: []string{locked.Addr}, Password: "wrong-" + password}, "refused the credentials: WRONGPASS"},
		{"no password", Store{Address: []string{locked.Addr}}, "refused the credentials: NOAUTH"},
		{"tls to plain redis", Store{Address: []string{plain.Addr}, TLS: true}, "does not speak TLS"},
		{"right password", Store{Address: []string{locked.Addr}, Password: password}, ""},
		{"nobody there", Store{Address: []string{closed}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := openConfigured(t, &tc.store)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("error %v, want %q", err, tc.want)
			case err != nil && strings.Contains(err.Error(), password):
				t.Errorf("the error shows the password: %v", err)
			}
		})
	}
}

// openConfigured provisions the store as Caddy would and opens the
// default realm on it, closed when the test ends: the error is Open's
// verdict on the configuration.
func openConfigured(t *testing.T, st *Store) (store.Backend, error) {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := st.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	b, err := st.Open(ctx, store.Options{Realm: "miniapp", Remember: time.Hour, Now: time.Now, Logger: zap.NewNop()})
	if b != nil {
		t.Cleanup(func() { _ = b.Close() })
	}
	return b, err
}

// TestRedisFrozen: with Redis frozen (SIGSTOP), a logout's write ends
// within the store's timeout and is kept for later; the requests after it
// answer from memory at once; once Redis is back a sync sends the write.
func TestRedisFrozen(t *testing.T) {
	r := testredis.Start(t)
	clk := new(session.Clock)
	rv := store.NewRealm(openBackend(t, r.Addr, clk), store.Options{Now: clk.Now, Logger: zap.NewNop()})
	ctx := context.Background()
	if err := rv.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	r.Pause()
	start := time.Now()
	rv.Revoke(ctx, [16]byte(random(16)), clk.Now().Add(time.Hour))
	first := time.Since(start)
	start = time.Now()
	rv.Revoke(ctx, [16]byte(random(16)), clk.Now().Add(time.Hour))
	rv.Counter(ctx, store.AccountID(random(16)))
	next := time.Since(start)
	r.Resume()
	if first > store.Timeout+time.Second || next > store.Timeout/4 {
		t.Errorf("with Redis frozen a logout took %v (the timeout is %v) and the next requests %v", first, store.Timeout, next)
	}
	if rv.Pending() != 2 {
		t.Errorf("%d writes pending, want the 2 logouts", rv.Pending())
	}
	deadline := time.Now().Add(10 * time.Second)
	for rv.Sync(ctx) != nil && time.Now().Before(deadline) {
	}
	if rv.Pending() != 0 {
		t.Errorf("%d writes pending after Redis came back", rv.Pending())
	}
}

// TestRedisStrikesShared: failures counted on one node count on every
// node, until their window ends.
func TestRedisStrikesShared(t *testing.T) {
	r := testredis.Start(t)
	clk := new(session.Clock)
	a, b := openBackend(t, r.Addr, clk), openBackend(t, r.Addr, clk)
	ctx := context.Background()
	for range 3 {
		if _, _, err := a.Strike(ctx, "code:ada", 1, 2*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	n, until, err := b.Strikes(ctx, "code:ada")
	if n != 3 || err != nil || !until.After(clk.Now()) {
		t.Fatalf("another node reads %d until %v, %v; want 3", n, until, err)
	}
	time.Sleep(until.Sub(clk.Now()) + 100*time.Millisecond)
	if n, _, err := b.Strikes(ctx, "code:ada"); n != 0 || err != nil {
		t.Errorf("after the window: %d %v", n, err)
	}
}

// TestRedisWarnsWithoutPersistence: a Redis that keeps nothing across a
// restart is named at start, as second factors live there; one with AOF
// is not.
func TestRedisWarnsWithoutPersistence(t *testing.T) {
	for _, tc := range []struct {
		args []string
		warn bool
	}{{nil, false}, {[]string{"--appendonly", "no"}, true}} {
		r := testredis.Start(t, tc.args...)
		core, logs := observer.New(zap.WarnLevel)
		st := &Store{Address: []string{r.Addr}}
		ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
		defer cancel()
		if err := st.Provision(ctx); err != nil {
			t.Fatal(err)
		}
		b, err := st.Open(ctx, store.Options{Realm: "miniapp", Every: time.Second, Remember: time.Hour, Now: time.Now, Logger: zap.New(core)})
		if err != nil {
			t.Fatal(err)
		}
		_ = b.Close()
		if got := logs.FilterMessageSnippet("keeps no data across a restart").Len() == 1; got != tc.warn {
			t.Errorf("%v: warned %v, want %v", tc.args, got, tc.warn)
		}
	}
}

// TestRedisTLS: a Redis whose certificate a private CA signed works with
// tls { ca }, and with the client certificate where it asks for one
// (tls-auth-clients); the system's roots, another CA, a missing client
// certificate or files that do not load refuse the config with the
// reason, never a key's contents.
func TestRedisTLS(t *testing.T) {
	files, other := testredis.NewTLSFiles(t, "test CA"), testredis.NewTLSFiles(t, "another CA")
	open := testredis.StartTLS(t, files, false)
	mutual := testredis.StartTLS(t, files, true)
	key, err := os.ReadFile(files.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		store Store
		want  string
	}{
		{"private CA", Store{Address: []string{open.Addr}, TLSCA: files.CA}, ""},
		{"client certificate", Store{Address: []string{mutual.Addr}, TLSCA: files.CA, TLSCert: files.ClientCert, TLSKey: files.ClientKey}, ""},
		{"system roots", Store{Address: []string{open.Addr}, TLS: true}, "certificate does not verify"},
		{"another CA", Store{Address: []string{open.Addr}, TLSCA: other.CA}, "certificate does not verify"},
		{"no client certificate", Store{Address: []string{mutual.Addr}, TLSCA: files.CA}, "refused the TLS connection"},
		{"a client certificate of another CA", Store{Address: []string{mutual.Addr}, TLSCA: files.CA, TLSCert: other.ClientCert, TLSKey: other.ClientKey},
			"refused the TLS connection"},
		{"a CA file that is no PEM", Store{Address: []string{open.Addr}, TLSCA: files.ClientKey + "x"}, "redis tls ca"},
		{"a key of another certificate", Store{Address: []string{mutual.Addr}, TLSCA: files.CA, TLSCert: files.ClientCert, TLSKey: other.ClientKey},
			"redis tls cert"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := openConfigured(t, &tc.store)
			if !tc.store.TLS {
				t.Fatal("tls files did not turn tls on")
			}
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("error %v, want %q", err, tc.want)
			case err != nil && strings.Contains(err.Error(), string(key[30:60])):
				t.Errorf("the error shows the key: %v", err)
			}
			if tc.want == "" {
				if _, err := b.SignOut(context.Background(), store.AccountID{1}, 1); err != nil {
					t.Errorf("a write over TLS: %v", err)
				}
			}
		})
	}
	if err := (&Store{TLSCert: files.ClientCert}).Validate(); err == nil {
		t.Error("a client certificate without its key validates")
	}
}
