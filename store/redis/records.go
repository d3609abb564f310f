package redis

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/caddy-miniapp/miniapp/store"
	goredis "github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// Durable records live in one hash of the realm, {realm}:records, field
// by key. A swap compares and sets in one script, which also adds the
// new value to the stream: atomic for every node. Unlike revocations,
// records never expire, so Redis must keep its data across restarts
// (AOF or RDB): Open warns when it would not.

func (b *redisBackend) recordsKey() string { return b.base + "records" }

// Record reads the record's field; a value larger than a record can be
// is an error, not an absent record.
func (b *redisBackend) Record(ctx context.Context, key string) ([]byte, error) {
	value, err := b.client.HGet(ctx, b.recordsKey(), key).Bytes()
	if errors.Is(err, goredis.Nil) {
		return nil, nil
	}
	if err == nil && len(value) > store.MaxRecord {
		return nil, errors.New("a record in redis is larger than a record can be")
	}
	return value, err
}

// swapScript sets field ARGV[3] of the hash KEYS[1] to ARGV[5] (empty:
// removes it) when it holds ARGV[4] (empty: none), and adds the change to
// the stream KEYS[2], trimmed by the realm's longest lifetime (KEYS[3]).
var swapScript = goredis.NewScript(`local rk = 3` + trimLua + `
local current = redis.call('HGET', KEYS[1], ARGV[3]) or ''
if current ~= ARGV[4] then
	return 0
end
if ARGV[5] == '' then
	redis.call('HDEL', KEYS[1], ARGV[3])
else
	redis.call('HSET', KEYS[1], ARGV[3], ARGV[5])
end
redis.call('XADD', KEYS[2], 'MINID', '~', minid, '*', 'k', 'R', 'i', ARGV[3], 'v', ARGV[5])
return 1
`)

func (b *redisBackend) SwapRecord(ctx context.Context, key string, old, new []byte) (bool, error) {
	keys := []string{b.recordsKey(), b.stream, b.base + "remember"}
	n, err := swapScript.Run(ctx, b.client, keys, b.opts.Now().UnixMilli(), b.opts.Remember.Milliseconds(), key, old, new).Int()
	return n == 1, err
}

// allRecords reads every record, for the first call of Changes.
func (b *redisBackend) allRecords(ctx context.Context) ([]store.Change, error) {
	var out []store.Change
	var cursor uint64
	for {
		kv, next, err := b.client.HScan(ctx, b.recordsKey(), cursor, "*", 1000).Result()
		if err != nil {
			return nil, err
		}
		for i := 0; i+1 < len(kv); i += 2 {
			if len(kv[i+1]) <= store.MaxRecord {
				out = append(out, store.Change{Record: kv[i], Value: []byte(kv[i+1])})
			}
		}
		if cursor = next; cursor == 0 {
			return out, nil
		}
	}
}

// strikeScript adds ARGV[2] to the count KEYS[1], whose window of
// ARGV[1] milliseconds begins with the first attempt, and returns the
// count and the milliseconds left; taking back (a negative ARGV[2])
// without an open window does nothing.
var strikeScript = goredis.NewScript(`
local by = tonumber(ARGV[2])
if by < 0 and redis.call('EXISTS', KEYS[1]) == 0 then
	return {0, 0}
end
local n = redis.call('INCRBY', KEYS[1], by)
if n < 0 then
	n = 0
	redis.call('SET', KEYS[1], 0, 'KEEPTTL')
end
if redis.call('PTTL', KEYS[1]) < 0 then
	redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return {n, redis.call('PTTL', KEYS[1])}
`)

func (b *redisBackend) strikeKey(key string) string { return b.base + "strikes:" + key }

// SharedStrikes marks the backend's strikes as counted for every node.
func (*redisBackend) SharedStrikes() {}

func (b *redisBackend) Strike(ctx context.Context, key string, by int, window time.Duration) (int, time.Time, error) {
	res, err := strikeScript.Run(ctx, b.client, []string{b.strikeKey(key)}, window.Milliseconds(), by).Int64Slice()
	if err != nil || len(res) != 2 {
		return 0, time.Time{}, errors.Join(err, errors.New("unexpected answer to a strike"))
	}
	return int(res[0]), b.opts.Now().Add(time.Duration(res[1]) * time.Millisecond), nil
}

func (b *redisBackend) Strikes(ctx context.Context, key string) (int, time.Time, error) {
	var n *goredis.StringCmd
	var ttl *goredis.DurationCmd
	_, err := b.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
		n, ttl = p.Get(ctx, b.strikeKey(key)), p.PTTL(ctx, b.strikeKey(key))
		return nil
	})
	if errors.Is(err, goredis.Nil) {
		return 0, time.Time{}, nil
	}
	if err != nil {
		return 0, time.Time{}, err
	}
	count, err := n.Int()
	if err != nil || ttl.Val() <= 0 {
		return 0, time.Time{}, nil
	}
	return count, b.opts.Now().Add(ttl.Val()), nil
}

// warnWithoutPersistence warns when the server keeps nothing across a
// restart (neither AOF nor RDB snapshots), where CONFIG GET is allowed:
// the records of second factors would be lost with it.
func warnWithoutPersistence(ctx context.Context, client goredis.UniversalClient, logger *zap.Logger) {
	ctx, cancel := context.WithTimeout(ctx, store.Timeout)
	defer cancel()
	conf, err := client.ConfigGet(ctx, "*").Result()
	if err != nil {
		return // not allowed, or not reachable: nothing to tell
	}
	if conf["appendonly"] != "yes" && strings.TrimSpace(conf["save"]) == "" {
		logger.Warn("redis keeps no data across a restart (appendonly no, save \"\"): accounts' second factors live there; enable AOF or RDB persistence")
	}
}
