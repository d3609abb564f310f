package testredis

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"os"
	"testing"

	"github.com/redis/go-redis/v9"
)

// TestTLS: a TLS server answers a client that trusts its CA and shows
// the client certificate, and refuses one without it.
func TestTLS(t *testing.T) {
	f := NewTLSFiles(t, "testredis")
	r := StartTLS(t, f, true)
	pool := x509.NewCertPool()
	ca, err := os.ReadFile(f.CA)
	if err != nil || !pool.AppendCertsFromPEM(ca) {
		t.Fatal("the CA file does not hold a certificate", err)
	}
	pair, err := tls.LoadX509KeyPair(f.ClientCert, f.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	with := redis.NewClient(&redis.Options{Addr: r.Addr, TLSConfig: &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool, Certificates: []tls.Certificate{pair}}})
	defer func() { _ = with.Close() }()
	if err := with.Ping(ctx).Err(); err != nil {
		t.Errorf("a client with the certificate: %v", err)
	}
	without := redis.NewClient(&redis.Options{Addr: r.Addr, TLSConfig: &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}, MaxRetries: -1})
	defer func() { _ = without.Close() }()
	if err := without.Ping(ctx).Err(); err == nil {
		t.Error("a client without a certificate was answered")
	}
}
