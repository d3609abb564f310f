package oidc

import (
	stdcrypto "crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/url"
	"sync/atomic"
	"testing"

	"github.com/caddy-miniapp/miniapp/internal/testredis"
	redisstore "github.com/caddy-miniapp/miniapp/store/redis"
	filestore "github.com/caddy-miniapp/miniapp/store/storage"
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"
)

// BenchmarkExchange redeems codes at the token endpoint on both cores,
// 16 at a time (client secret, PKCE, the code used up, an ID token signed), on either
// store: the issue's "one signature and a bounded number of store
// operations" (a strike and a revocation: on storage a journal file
// written and synced, as for a logout). Its throughput is set against
// BenchmarkSignRS256's in the same run. The codes are made before the
// timer starts.
func BenchmarkExchange(b *testing.B) {
	r := testredis.Start(b)
	on := &redisstore.Store{Address: []string{r.Addr}}
	if err := on.Provision(caddy.Context{}); err != nil {
		b.Fatal(err)
	}
	for name, f := range map[string]*fixture{"storage": newFixtureOn(b, filestore.New(&certmagic.FileStorage{Path: b.TempDir()})),
		"redis": newFixtureOn(b, on)} {
		b.Run(name, func(b *testing.B) { benchmarkExchange(b, f) })
	}
}

func benchmarkExchange(b *testing.B, f *fixture) {
	codes := make([]string, b.N)
	for i := range codes {
		codes[i] = f.code(b, "grafana", grafanaURI, "openid profile email", f.signed(f.ada, 1))
	}
	h := http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte("grafana:"+secret))}}
	var next atomic.Int64
	b.ReportAllocs()
	// a server has many exchanges in flight: while some wait on the
	// store, others sign
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			code := codes[next.Add(1)-1]
			w, _ := f.serve(http.MethodPost, TokenPath, url.Values{"grant_type": {"authorization_code"}, "code": {code},
				"redirect_uri": {grafanaURI}, "code_verifier": {verifier}}, h)
			if w.Code != http.StatusOK {
				b.Errorf("exchange: %d %s", w.Code, w.Body)
				return
			}
		}
	})
}

// BenchmarkSignRS256 is the bare RS256 signature of the same key over
// an ID token's size, on both cores: the exchange's ceiling.
func BenchmarkSignRS256(b *testing.B) {
	f := newFixture(b)
	set, err := f.p.keys()
	if err != nil {
		b.Fatal(err)
	}
	key := set.signing(f.clock.Now()).private
	sum := sha256.Sum256(make([]byte, 600))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := rsa.SignPKCS1v15(nil, key, stdcrypto.SHA256, sum[:]); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkUserinfo answers userinfo for a live access token, on both
// cores.
func BenchmarkUserinfo(b *testing.B) {
	f := newFixture(b)
	tok := f.exchange(b, "grafana", grafanaURI, f.code(b, "grafana", grafanaURI, "openid profile email groups", f.signed(f.ada, 1)))
	h := http.Header{"Authorization": {"Bearer " + tok.AccessToken}}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if w, _ := f.serve(http.MethodGet, UserinfoPath, nil, h); w.Code != http.StatusOK {
				b.Errorf("userinfo: %d", w.Code)
				return
			}
		}
	})
}
