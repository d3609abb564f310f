package oidc

import (
	stdcrypto "crypto"
	"crypto/rsa"
	"crypto/sha256"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/testredis"
	redisstore "github.com/caddy-miniapp/miniapp/store/redis"
	filestore "github.com/caddy-miniapp/miniapp/store/storage"
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"
)

// BenchmarkExchange redeems codes at the token endpoint (client secret,
// PKCE, the single-use check, an ID token signed), on either store: the
// issue's "one signature and a bounded number of store operations" (a
// strike and a revocation: on storage a journal file written and synced,
// as for a logout). The codes are made before the timer starts.
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
	set, err := f.p.keys()
	if err != nil {
		b.Fatal(err)
	}
	key := set.signing(f.clock.Now()).private
	h := http.Header{"Authorization": {"Basic Z3JhZmFuYTowMTIzNDU2Nzg5YWJjZGVmMDEyMzQ1Njc4OWFiY2RlZg=="}}
	var exchanging, signing time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	for _, code := range codes {
		start := time.Now()
		w, _ := f.serve(http.MethodPost, TokenPath, url.Values{"grant_type": {"authorization_code"}, "code": {code},
			"redirect_uri": {grafanaURI}, "code_verifier": {verifier}}, h)
		exchanging += time.Since(start)
		if w.Code != http.StatusOK {
			b.Fatalf("exchange: %d %s", w.Code, w.Body)
		}
		// the bare signature of the same key, interleaved so that both
		// see the same machine
		start = time.Now()
		sum := sha256.Sum256(w.Body.Bytes())
		if _, err := rsa.SignPKCS1v15(nil, key, stdcrypto.SHA256, sum[:]); err != nil {
			b.Fatal(err)
		}
		signing += time.Since(start)
	}
	b.ReportMetric(float64(exchanging.Nanoseconds())/float64(b.N), "exchange-ns/op")
	b.ReportMetric(float64(signing.Nanoseconds())/float64(b.N), "sign-ns/op")
	b.ReportMetric(float64(signing)/float64(exchanging), "exchanges/signatures")
}

// BenchmarkSignRS256 is the bare RS256 signature of the same key over
// an ID token's size: the exchange's floor.
func BenchmarkSignRS256(b *testing.B) {
	f := newFixture(b)
	set, err := f.p.keys()
	if err != nil {
		b.Fatal(err)
	}
	key := set.signing(f.clock.Now()).private
	payload := make([]byte, 600)
	b.ReportAllocs()
	for b.Loop() {
		sum := sha256.Sum256(payload)
		if _, err := rsa.SignPKCS1v15(nil, key, stdcrypto.SHA256, sum[:]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkUserinfo answers userinfo for a live access token.
func BenchmarkUserinfo(b *testing.B) {
	f := newFixture(b)
	tok := f.exchange(b, "grafana", grafanaURI, f.code(b, "grafana", grafanaURI, "openid profile email groups", f.signed(f.ada, 1)))
	h := http.Header{"Authorization": {"Bearer " + tok.AccessToken}}
	b.ReportAllocs()
	for b.Loop() {
		if w, _ := f.serve(http.MethodGet, UserinfoPath, nil, h); w.Code != http.StatusOK {
			b.Fatalf("userinfo: %d", w.Code)
		}
	}
}
