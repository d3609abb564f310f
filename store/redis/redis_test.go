package redis

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

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
