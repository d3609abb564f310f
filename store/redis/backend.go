package redis

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/caddy-miniapp/miniapp/store"
	"go.uber.org/zap"
)

// redisBackend is one realm's keys in Redis.
type redisBackend struct {
	client goredis.UniversalClient
	base   string
	stream string
	opts   store.Options
	// cursor is the ID of the last stream entry read; empty before the
	// first read. Stream IDs begin with the time in milliseconds, so the
	// entries of a Redis that lost its data and started again still come
	// after it.
	cursor string
	// generation is the realm's generation reported last.
	generation store.Generation
	// recordsRead is set once every durable record has been read.
	recordsRead bool
}

// trimLua keeps the realm's longest announced session lifetime in the
// key KEYS[rk] (ARGV[2] is this node's, in milliseconds; the key lives as
// long as the lifetime it names, renewed by the writes of the nodes that
// announce it), and sets minid to the oldest stream entry that may still
// matter at ARGV[1] (now, in milliseconds): a site with a short lifetime
// never trims away the changes of another site of the realm.
const trimLua = `
local mine = tonumber(ARGV[2])
local longest = tonumber(redis.call('GET', KEYS[rk])) or 0
if mine >= longest then
	redis.call('SET', KEYS[rk], mine, 'PX', mine)
	longest = mine
end
local minid = string.format('%d', tonumber(ARGV[1]) - longest)
`

// appendScript adds an entry (the field-value pairs from ARGV[3]) to the
// stream KEYS[1], trimmed by the realm's longest lifetime (KEYS[2]).
var appendScript = goredis.NewScript(`local rk = 2` + trimLua + `
redis.call('XADD', KEYS[1], 'MINID', '~', minid, '*', unpack(ARGV, 3))
return 1
`)

// signOutScript raises the counter KEYS[1] by one and to at least
// ARGV[3], and adds the change to the stream KEYS[2], trimmed by the
// realm's longest lifetime (KEYS[3]). A stored counter that cannot be
// true or cannot be raised (ARGV[5] or above) is refused like a forged
// cookie: the raise starts from 0.
var signOutScript = goredis.NewScript(`local rk = 3` + trimLua + `
local n = tonumber(redis.call('GET', KEYS[1])) or 0
if n >= tonumber(ARGV[5]) then
	n = 0
end
n = math.max(n + 1, tonumber(ARGV[3]))
redis.call('SET', KEYS[1], n)
redis.call('XADD', KEYS[2], 'MINID', '~', minid, '*', 'k', 'c', 'i', ARGV[4], 'v', n)
return n
`)

func (b *redisBackend) PollEvery() time.Duration { return 0 }

func (b *redisBackend) Close() error { return b.client.Close() }

// append adds one entry to the realm's stream.
func (b *redisBackend) append(ctx context.Context, fields ...any) error {
	args := append([]any{b.opts.Now().UnixMilli(), b.opts.Remember.Milliseconds()}, fields...)
	return appendScript.Run(ctx, b.client, []string{b.stream, b.base + "remember"}, args...).Err()
}

func (b *redisBackend) Login(ctx context.Context, e store.Entry) error {
	return b.append(ctx, "k", "s", "v", e.String())
}

// Revoke adds the revocation to the stream, which every node reads; a
// session that has expired needs none.
func (b *redisBackend) Revoke(ctx context.Context, id [16]byte, expires time.Time) error {
	if !expires.After(b.opts.Now()) {
		return nil
	}
	return b.append(ctx, "k", "r", "i", hex.EncodeToString(id[:]), "v", expires.Unix())
}

// Use adds the session's last use to the stream.
func (b *redisBackend) Use(ctx context.Context, id [16]byte, expires, at time.Time) error {
	if !expires.After(b.opts.Now()) {
		return nil
	}
	return b.append(ctx, "k", "u", "i", hex.EncodeToString(id[:]), "v", expires.Unix(), "t", at.Unix())
}

func (b *redisBackend) SignOut(ctx context.Context, acct store.AccountID, atLeast uint32) (uint32, error) {
	hexID := hex.EncodeToString(acct[:])
	keys := []string{b.base + "signout:" + hexID, b.stream, b.base + "remember"}
	n, err := signOutScript.Run(ctx, b.client, keys, b.opts.Now().UnixMilli(), b.opts.Remember.Milliseconds(), atLeast, hexID, store.MaxCounter).Int64()
	if err == nil && (n < 0 || n > store.MaxCounter) {
		err = fmt.Errorf("sign-out counter %d cannot be true", n)
	}
	return uint32(n), err
}

func (b *redisBackend) Counter(ctx context.Context, acct store.AccountID) (uint32, error) {
	key := b.base + "signout:" + hex.EncodeToString(acct[:])
	value, err := b.client.Get(ctx, key).Result()
	if errors.Is(err, goredis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	n, ok := store.ParseCounter(value)
	if !ok {
		// refused like a forged cookie: as if the account never signed out
		b.opts.Logger.Warn("a sign-out counter that cannot be true; it is ignored", zap.String("key", key))
		return 0, nil
	}
	return n, nil
}

// AddDevice adds the device to the account's sorted set, scored by the
// time it is known until, and keeps the newest store.MaxDevices.
func (b *redisBackend) AddDevice(ctx context.Context, acct store.AccountID, id [16]byte, until time.Time) error {
	key := b.base + "devices:" + hex.EncodeToString(acct[:])
	_, err := b.client.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		p.ZAdd(ctx, key, goredis.Z{Score: float64(until.Unix()), Member: hex.EncodeToString(id[:])})
		p.ZRemRangeByScore(ctx, key, "-inf", "("+strconv.FormatInt(b.opts.Now().Unix(), 10))
		p.ZRemRangeByRank(ctx, key, 0, -store.MaxDevices-1)
		p.ExpireAt(ctx, key, until)
		return nil
	})
	return err
}

// HasDevice looks the device up in the account's sorted set.
func (b *redisBackend) HasDevice(ctx context.Context, acct store.AccountID, id [16]byte) (bool, error) {
	until, err := b.client.ZScore(ctx, b.base+"devices:"+hex.EncodeToString(acct[:]), hex.EncodeToString(id[:])).Result()
	if errors.Is(err, goredis.Nil) {
		return false, nil
	}
	return err == nil && int64(until) > b.opts.Now().Unix(), err
}

// KeySet returns the realm's key set, made once with SET NX.
func (b *redisBackend) KeySet(ctx context.Context, create func() ([]byte, error)) ([]byte, error) {
	return b.once(ctx, b.base+"keys", create)
}

// once returns the record at key, making it with SET NX when there is
// none, so that every node gets the same.
func (b *redisBackend) once(ctx context.Context, key string, create func() ([]byte, error)) ([]byte, error) {
	data, err := b.client.Get(ctx, key).Bytes()
	if !errors.Is(err, goredis.Nil) {
		return data, err
	}
	if data, err = create(); err != nil {
		return nil, err
	}
	if err := b.client.SetNX(ctx, key, data, 0).Err(); err != nil {
		return nil, err
	}
	return b.client.Get(ctx, key).Bytes()
}

// checkGeneration reads the realm's generation, making it when it is
// gone, and returns it as a change when it is not the one reported
// before.
func (b *redisBackend) checkGeneration(ctx context.Context) ([]store.Change, error) {
	return b.generation.Check(b.once(ctx, b.base+"generation", func() ([]byte, error) {
		return store.NewGenerationRecord(b.opts.Logger)
	}))
}

// Changes reads the stream's new entries and the realm's generation.
func (b *redisBackend) Changes(ctx context.Context) ([]store.Change, error) {
	out, err := b.read(ctx)
	if err == nil && !b.recordsRead {
		// after the stream's entries, which they are newer than
		var records []store.Change
		records, err = b.allRecords(ctx)
		out, b.recordsRead = append(out, records...), err == nil
	}
	// checked after the entries, and reported before them: whatever
	// generation they were written under, they apply after its change
	generation, gerr := b.checkGeneration(ctx)
	return append(generation, out...), errors.Join(err, gerr)
}

// read reads the whole stream on the first call, and afterwards waits up
// to a second for entries after the last one read.
func (b *redisBackend) read(ctx context.Context) ([]store.Change, error) {
	var out []store.Change
	if b.cursor == "" {
		for {
			start := "-"
			if b.cursor != "" {
				start = "(" + b.cursor
			}
			msgs, err := b.client.XRangeN(ctx, b.stream, start, "+", 10000).Result()
			if err != nil {
				// the pages read are kept; XREAD goes on from the cursor
				return out, err
			}
			out = b.parse(msgs, out)
			if len(msgs) < 10000 {
				break
			}
		}
		if b.cursor == "" {
			b.cursor = "0-0"
		}
		return out, nil
	}
	streams, err := b.client.XRead(ctx, &goredis.XReadArgs{Streams: []string{b.stream, b.cursor}, Count: 10000, Block: time.Second}).Result()
	if errors.Is(err, goredis.Nil) {
		return out, nil
	}
	if err != nil {
		return out, err
	}
	for _, s := range streams {
		out = b.parse(s.Messages, out)
	}
	return out, nil
}

// parse turns stream entries into changes, moving the cursor past them.
func (b *redisBackend) parse(msgs []goredis.XMessage, out []store.Change) []store.Change {
	for _, m := range msgs {
		b.cursor = m.ID
		k, _ := m.Values["k"].(string)
		i, _ := m.Values["i"].(string)
		v, _ := m.Values["v"].(string)
		switch k {
		case "s":
			if e, ok := store.ParseEntry(v); ok {
				out = append(out, store.Change{Login: &e})
			}
			continue
		case "R":
			if i != "" && len(v) <= store.MaxRecord {
				c := store.Change{Record: i}
				if v != "" {
					c.Value = []byte(v)
				}
				out = append(out, c)
			}
			continue
		}
		id, err := hex.DecodeString(i)
		if err != nil || len(id) != 16 {
			continue
		}
		// impossible values are refused like a forged cookie
		switch k {
		case "r":
			if exp, ok := store.ParseTime(v); ok {
				out = append(out, store.Change{Revoked: true, ID: [16]byte(id), Expires: time.Unix(exp, 0)})
			}
		case "c":
			if n, ok := store.ParseCounter(v); ok {
				out = append(out, store.Change{Account: store.AccountID(id), Counter: n})
			}
		case "u":
			at, _ := m.Values["t"].(string)
			exp, ok1 := store.ParseTime(v)
			used, ok2 := store.ParseTime(at)
			if ok1 && ok2 && used > 0 {
				out = append(out, store.Change{ID: [16]byte(id), Expires: time.Unix(exp, 0), Used: time.Unix(used, 0)})
			}
		}
	}
	return out
}
