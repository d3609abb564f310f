package redis

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/session"
	"github.com/caddy-miniapp/miniapp/internal/testredis"
	"github.com/caddy-miniapp/miniapp/store"
	"github.com/caddyserver/caddy/v2"
	goredis "github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// records are the record changes among changes, by key.
func records(changes []store.Change) map[string][]byte {
	out := make(map[string][]byte)
	for _, c := range changes {
		if c.Record != "" {
			out[c.Record] = c.Value
		}
	}
	return out
}

// TestRedisRecordTooLarge: a record in Redis larger than a record can
// be (written there by hand) is an error when read, never taken for an
// absent one, and is left out of a joining node's first read.
func TestRedisRecordTooLarge(t *testing.T) {
	r := testredis.Start(t)
	clk := new(session.Clock)
	b := openBackend(t, r.Addr, clk)
	ctx := context.Background()
	if err := b.client.HSet(ctx, b.recordsKey(), "totp:huge", strings.Repeat("x", store.MaxRecord+1), "totp:fine", "sealed").Err(); err != nil {
		t.Fatal(err)
	}
	if got, err := b.Record(ctx, "totp:huge"); err == nil || got != nil {
		t.Errorf("an oversized record: %d bytes, %v", len(got), err)
	}
	if got, err := b.Record(ctx, "totp:fine"); err != nil || string(got) != "sealed" {
		t.Errorf("a record: %q %v", got, err)
	}
	if got, err := b.Record(ctx, "totp:none"); err != nil || got != nil {
		t.Errorf("no record: %q %v", got, err)
	}
	if err := b.client.HSet(ctx, b.recordsKey(), "totp:limit", strings.Repeat("y", store.MaxRecord)).Err(); err != nil {
		t.Fatal(err)
	}
	if got, err := b.Record(ctx, "totp:limit"); err != nil || len(got) != store.MaxRecord {
		t.Errorf("a record of the largest size: %d bytes, %v", len(got), err)
	}
	joined := openBackend(t, r.Addr, clk)
	changes, err := joined.Changes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := records(changes)
	if _, ok := got["totp:huge"]; ok || string(got["totp:fine"]) != "sealed" || len(got["totp:limit"]) != store.MaxRecord || len(got) != 2 {
		t.Errorf("a joining node read %d records: %v", len(got), keysOf(got))
	}
}

// keysOf lists the keys of the records read.
func keysOf(m map[string][]byte) []string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	return keys
}

// TestRedisAllRecords: a joining node reads every record, past the
// first page of the hash's scan, once: the next read has only what
// changed since.
func TestRedisAllRecords(t *testing.T) {
	r := testredis.Start(t)
	clk := new(session.Clock)
	b := openBackend(t, r.Addr, clk)
	ctx := context.Background()
	const n = 2500
	values := make([]any, 0, 2*n)
	for i := range n {
		values = append(values, fmt.Sprintf("totp:user%d", i), fmt.Sprintf("sealed %d", i))
	}
	if err := b.client.HSet(ctx, b.recordsKey(), values...).Err(); err != nil {
		t.Fatal(err)
	}
	joined := openBackend(t, r.Addr, clk)
	changes, err := joined.Changes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := records(changes)
	if len(got) != n || string(got["totp:user2499"]) != "sealed 2499" || string(got["totp:user0"]) != "sealed 0" {
		t.Fatalf("read %d of %d records", len(got), n)
	}
	if ok, err := b.SwapRecord(ctx, "totp:user7", []byte("sealed 7"), []byte("sealed 7 again")); !ok || err != nil {
		t.Fatalf("swap: %v %v", ok, err)
	}
	changes, err = joined.Changes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := records(changes); len(got) != 1 || string(got["totp:user7"]) != "sealed 7 again" {
		t.Errorf("the next read: %d records", len(got))
	}
}

// TestRedisSwapStream: a swap that succeeds is one entry of the stream
// with the record's new value (none for a removal); one that fails
// writes nothing.
func TestRedisSwapStream(t *testing.T) {
	r := testredis.Start(t)
	clk := new(session.Clock)
	b := openBackend(t, r.Addr, clk)
	ctx := context.Background()
	length := func() int64 {
		t.Helper()
		n, err := b.client.XLen(ctx, b.stream).Result()
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := length()
	if ok, err := b.SwapRecord(ctx, "passkeys:ada", []byte("not there"), []byte("v1")); ok || err != nil {
		t.Fatalf("a swap from a value the store does not hold: %v %v", ok, err)
	}
	if got := length(); got != before {
		t.Errorf("a failed swap wrote %d stream entries", got-before)
	}
	if v, _ := b.client.HExists(ctx, b.recordsKey(), "passkeys:ada").Result(); v {
		t.Error("a failed swap wrote the record")
	}
	if ok, err := b.SwapRecord(ctx, "passkeys:ada", nil, []byte("v1")); !ok || err != nil {
		t.Fatalf("a swap from none: %v %v", ok, err)
	}
	if ok, err := b.SwapRecord(ctx, "passkeys:ada", []byte("v1"), nil); !ok || err != nil {
		t.Fatalf("a removal: %v %v", ok, err)
	}
	msgs, err := b.client.XRange(ctx, b.stream, "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	if got := length(); got != before+2 || len(msgs) < 2 {
		t.Fatalf("the stream has %d new entries, want 2", got-before)
	}
	set, removed := msgs[len(msgs)-2].Values, msgs[len(msgs)-1].Values
	if set["k"] != "R" || set["i"] != "passkeys:ada" || set["v"] != "v1" || removed["k"] != "R" || removed["i"] != "passkeys:ada" || removed["v"] != "" {
		t.Errorf("stream entries %v and %v", set, removed)
	}
	if v, _ := b.client.HExists(ctx, b.recordsKey(), "passkeys:ada").Result(); v {
		t.Error("the removal left the record")
	}
	// the stream entry of an oversized value (written there by hand) is
	// not read as a record
	reader := openBackend(t, r.Addr, clk)
	if _, err := reader.Changes(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.client.XAdd(ctx, &goredis.XAddArgs{Stream: b.stream, Values: []any{"k", "R", "i", "totp:huge", "v", strings.Repeat("x", store.MaxRecord+1)}}).Err(); err != nil {
		t.Fatal(err)
	}
	if err := b.client.XAdd(ctx, &goredis.XAddArgs{Stream: b.stream, Values: []any{"k", "R", "i", "", "v", "nameless"}}).Err(); err != nil {
		t.Fatal(err)
	}
	if changes, err := reader.Changes(ctx); err != nil || len(records(changes)) != 0 {
		t.Errorf("impossible record entries read as %v, %v", keysOf(records(changes)), err)
	}
}

// TestRedisStrikeEdges: taking back below zero keeps the count at 0 in
// its window; a count that lost its expiry gets the window again;
// a count Redis holds that is no number, or has no expiry, is read as
// none.
func TestRedisStrikeEdges(t *testing.T) {
	r := testredis.Start(t)
	clk := new(session.Clock)
	b := openBackend(t, r.Addr, clk)
	ctx := context.Background()
	if n, _, err := b.Strike(ctx, "code:ada", 1, time.Minute); n != 1 || err != nil {
		t.Fatalf("strike: %d %v", n, err)
	}
	n, until, err := b.Strike(ctx, "code:ada", -3, time.Minute)
	if n != 0 || err != nil || !until.After(clk.Now()) {
		t.Errorf("taken back below zero: %d until %v, %v", n, until, err)
	}
	if ttl, _ := b.client.PTTL(ctx, b.strikeKey("code:ada")).Result(); ttl <= 0 || ttl > time.Minute {
		t.Errorf("the window after taking back: %v", ttl)
	}
	if n, _, _ := b.Strike(ctx, "code:ada", 1, time.Minute); n != 1 {
		t.Errorf("a strike after taking back below zero: %d, want 1", n)
	}
	// a count without an expiry (left by a crash between the script's
	// steps, or written by hand) is given its window at the next strike
	if err := b.client.Persist(ctx, b.strikeKey("code:ada")).Err(); err != nil {
		t.Fatal(err)
	}
	if n, _, err := b.Strikes(ctx, "code:ada"); n != 0 || err != nil {
		t.Errorf("a count without a window: %d %v", n, err)
	}
	n, until, err = b.Strike(ctx, "code:ada", 1, 2*time.Second)
	if n != 2 || err != nil || until.After(clk.Now().Add(2*time.Second)) || !until.After(clk.Now()) {
		t.Errorf("a strike on a count without a window: %d until %v, %v", n, until, err)
	}
	if err := b.client.Set(ctx, b.strikeKey("code:bob"), "many", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if n, _, err := b.Strikes(ctx, "code:bob"); n != 0 || err != nil {
		t.Errorf("a count that is no number: %d %v", n, err)
	}
	if _, _, err := b.Strike(ctx, "code:bob", 1, time.Minute); err == nil {
		t.Error("a strike on a count that is no number: no error")
	}
	if n, until, err := b.Strikes(ctx, "code:nobody"); n != 0 || !until.IsZero() || err != nil {
		t.Errorf("no count: %d %v %v", n, until, err)
	}
}

// TestWarnWithoutPersistence: beyond redis_test.go's AOF and nothing
// kept, no warning with RDB snapshots alone, nor where CONFIG is not
// allowed (nothing to tell).
func TestWarnWithoutPersistence(t *testing.T) {
	for _, tc := range []struct {
		name   string
		args   []string
		config bool
	}{
		{"RDB snapshots", []string{"--appendonly", "no", "--save", "3600 1"}, true},
		{"CONFIG not allowed", []string{"--appendonly", "no", "--rename-command", "CONFIG", ""}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := testredis.Start(t, tc.args...)
			client := goredis.NewClient(&goredis.Options{Addr: r.Addr})
			defer func() { _ = client.Close() }()
			if _, err := client.ConfigGet(context.Background(), "appendonly").Result(); (err == nil) != tc.config {
				t.Fatalf("CONFIG GET: %v, want allowed %v", err, tc.config)
			}
			core, logs := observer.New(zap.DebugLevel)
			warnWithoutPersistence(context.Background(), client, zap.New(core))
			if logs.Len() != 0 {
				t.Errorf("logged %v", logs.All())
			}
		})
	}
}

// TestRedisRecordsOfRealms: records are the realm's own: another realm
// on the same Redis neither reads nor swaps them.
func TestRedisRecordsOfRealms(t *testing.T) {
	r := testredis.Start(t)
	clk := new(session.Clock)
	b := openBackend(t, r.Addr, clk)
	ctx := context.Background()
	st := &Store{Address: []string{r.Addr}}
	cctx, cancel := caddy.NewContext(caddy.Context{Context: ctx})
	defer cancel()
	if err := st.Provision(cctx); err != nil {
		t.Fatal(err)
	}
	opened, err := st.Open(cctx, store.Options{Realm: "staff", Every: time.Second, Remember: time.Hour, Now: clk.Now, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = opened.Close() }()
	other := opened.(*redisBackend)
	if ok, err := b.SwapRecord(ctx, "totp:ada", nil, []byte("miniapp's")); !ok || err != nil {
		t.Fatal(err)
	}
	if got, err := other.Record(ctx, "totp:ada"); got != nil || err != nil {
		t.Errorf("another realm reads %q %v", got, err)
	}
	if ok, err := other.SwapRecord(ctx, "totp:ada", nil, []byte("staff's")); !ok || err != nil {
		t.Errorf("another realm's own record: %v %v", ok, err)
	}
	if got, _ := b.Record(ctx, "totp:ada"); !bytes.Equal(got, []byte("miniapp's")) {
		t.Errorf("the realm's record became %q", got)
	}
}
