// Package redis is the store backend `redis`: a realm's shared state in
// Redis (or Valkey), used as Redis: TTL keys, INCR, SET NX and a stream
// that every node reads as it comes. It registers the guest module
// http.handlers.miniapp.stores.redis; it knows the store package's
// interface and Redis, nothing of the handler.
package redis

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/caddy-miniapp/miniapp/store"
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	goredis "github.com/redis/go-redis/v9"
)

func init() {
	caddy.RegisterModule(Store{})
}

// Store keeps a realm's shared state in Redis (7 or later; Valkey
// implements the same commands), used as Redis: every change goes to a
// stream that each instance reads as it comes (XREAD BLOCK), so a logout
// is refused everywhere within milliseconds, and an instance cut off from
// Redis reads on from where it stopped once Redis is back. Redis trims
// the stream to the longest session lifetime any site of the realm
// announces (kept in the realm's remember key), so no site's changes are
// trimmed before its sessions end. Sign-out counters are raised by a
// script, and the key set and the realm's generation are made once with
// SET NX. A realm's keys carry the realm in braces, so they share one
// cluster slot. Nothing of the module's state goes to Caddy's storage.
//
// If Redis loses its data, the realm's generation is gone: every node
// refuses the sessions issued before, so no logged-out session comes
// back, and everyone signs in again. Run Redis with persistence.
type Store struct {
	// The Redis addresses, host:port: one server, or the nodes of a
	// cluster, or sentinels (with `master_name`). Placeholders are
	// replaced at load time. Default: 127.0.0.1:6379.
	Address []string `json:"address,omitempty"`
	// The name of the master that sentinels at `address` watch; empty
	// unless the addresses are sentinels.
	MasterName string `json:"master_name,omitempty"`
	// The user name for Redis ACLs, if any.
	Username string `json:"username,omitempty"`
	// The password, if any; give it as `{env.REDIS_PASSWORD}` or
	// `{file.…}`, as the config is shown by the admin API.
	Password string `json:"password,omitempty"`
	// The database number. Default: 0.
	DB int `json:"db,omitempty"`
	// Connect with TLS, checking the server's certificate against the
	// system's roots, or against `tls_ca` when it is set.
	TLS bool `json:"tls,omitempty"`
	// A PEM file of the certificate authorities that sign the servers'
	// certificates (a private CA), trusted instead of the system's roots.
	// Setting it turns on `tls`. A file that does not load, or a server
	// whose certificate it does not verify, refuses the config.
	TLSCA string `json:"tls_ca,omitempty"`
	// A PEM client certificate and its key (both, or neither), for a
	// Redis that asks clients for one (`tls-auth-clients yes`). Setting
	// them turns on `tls`; give the key as a file readable by Caddy
	// alone.
	TLSCert string `json:"tls_cert,omitempty"`
	TLSKey  string `json:"tls_key,omitempty"`
	// The prefix of every key the module writes, before the realm (in
	// braces, so that a realm's keys share one cluster slot).
	// Default: miniapp:
	KeyPrefix string `json:"key_prefix,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (Store) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.miniapp.stores.redis",
		New: func() caddy.Module { return new(Store) },
	}
}

// Provision fills in defaults and replaces placeholders.
func (s *Store) Provision(caddy.Context) error {
	repl := caddy.NewReplacer()
	if len(s.Address) == 0 {
		s.Address = []string{"127.0.0.1:6379"}
	}
	for i, a := range s.Address {
		s.Address[i] = repl.ReplaceKnown(a, "")
	}
	s.Username = repl.ReplaceKnown(s.Username, "")
	s.Password = repl.ReplaceKnown(s.Password, "")
	s.TLSCA = repl.ReplaceKnown(s.TLSCA, "")
	s.TLSCert = repl.ReplaceKnown(s.TLSCert, "")
	s.TLSKey = repl.ReplaceKnown(s.TLSKey, "")
	if s.TLSCA != "" || s.TLSCert != "" || s.TLSKey != "" {
		s.TLS = true
	}
	if s.KeyPrefix == "" {
		s.KeyPrefix = "miniapp:"
	}
	return nil
}

// Validate checks the addresses and the database number.
func (s *Store) Validate() error {
	for _, a := range s.Address {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return fmt.Errorf("redis address %q: %v", a, err)
		}
	}
	if s.DB < 0 {
		return fmt.Errorf("redis db must not be negative, got %d", s.DB)
	}
	if (s.TLSCert == "") != (s.TLSKey == "") {
		return errors.New("redis tls: a client certificate needs its key, and a key its certificate")
	}
	return nil
}

// UnmarshalCaddyfile reads the store's block. Syntax:
//
//	store redis {
//	    address <host:port>   # repeatable
//	    master_name <name>    # with sentinel addresses
//	    username <name>
//	    password <password>
//	    db <number>
//	    tls [{
//	        ca <file>     # PEM: a private CA, instead of the system's roots
//	        cert <file>   # PEM client certificate, with key
//	        key <file>
//	    }]
//	    key_prefix <prefix>
//	}
func (s *Store) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the store's name
	if d.NextArg() {
		return d.ArgErr()
	}
	seen := map[string]bool{}
	for d.NextBlock(0) {
		sub := d.Val()
		if sub != "address" && seen[sub] {
			return d.Errf("duplicate subdirective %s", sub)
		}
		seen[sub] = true
		var err error
		switch sub {
		case "address":
			var addrs []string
			addrs = d.RemainingArgs()
			if len(addrs) == 0 {
				return d.ArgErr()
			}
			s.Address = append(s.Address, addrs...)
		case "username":
			err = oneArg(d, &s.Username)
		case "master_name":
			err = oneArg(d, &s.MasterName)
		case "password":
			err = oneArg(d, &s.Password)
		case "key_prefix":
			err = oneArg(d, &s.KeyPrefix)
		case "db":
			var v string
			if err = oneArg(d, &v); err == nil {
				if s.DB, err = strconv.Atoi(v); err != nil || s.DB < 0 {
					return d.Errf("db: %q is not a database number", v)
				}
			}
		case "tls":
			if d.NextArg() {
				return d.ArgErr()
			}
			s.TLS = true
			err = s.unmarshalTLS(d)
		default:
			return d.Errf("unknown subdirective %q", sub)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// unmarshalTLS reads the optional block of tls.
func (s *Store) unmarshalTLS(d *caddyfile.Dispenser) error {
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		sub := d.Val()
		if seen[sub] {
			return d.Errf("duplicate tls subdirective %s", sub)
		}
		seen[sub] = true
		switch sub {
		case "ca":
			if err := oneArg(d, &s.TLSCA); err != nil {
				return err
			}
		case "cert":
			if err := oneArg(d, &s.TLSCert); err != nil {
				return err
			}
		case "key":
			if err := oneArg(d, &s.TLSKey); err != nil {
				return err
			}
		default:
			return d.Errf("unknown tls subdirective %q", sub)
		}
	}
	return nil
}

// Place names the server and everything of the connection, so that a
// reload with another password or TLS setting connects anew; the
// password enters only as a digest.
func (s *Store) Place() string {
	secret := sha256.Sum256([]byte(s.Password))
	return fmt.Sprintf("redis:%s/%s/%d/%s/%s/%t/%s/%s/%s/%x", strings.Join(s.Address, ","), s.MasterName, s.DB, s.Username, s.KeyPrefix, s.TLS,
		s.TLSCA, s.TLSCert, s.TLSKey, secret[:8])
}

// tlsConfig is the connection's TLS: the private CA if any (else the
// system's roots), and the client certificate if any. A file that does
// not load is an error naming it, never its contents.
func (s *Store) tlsConfig() (*tls.Config, error) {
	// each node's name is checked against its own address
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if s.TLSCA != "" {
		pem, err := os.ReadFile(s.TLSCA)
		if err != nil {
			return nil, fmt.Errorf("redis tls ca: %v", err)
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("redis tls ca %s: no PEM certificate in it", s.TLSCA)
		}
	}
	if s.TLSCert != "" {
		pair, err := tls.LoadX509KeyPair(s.TLSCert, s.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("redis tls cert %s and key %s: %v", s.TLSCert, s.TLSKey, err)
		}
		c.Certificates = []tls.Certificate{pair}
	}
	return c, nil
}

// Open connects to Redis for a realm.
//
// A Redis that answers but refuses the configuration (a wrong password
// or user, a TLS handshake with a server that speaks plain Redis) is a
// configuration error, and the config is refused; a Redis that does not
// answer is an outage, and the handler starts all the same.
func (s *Store) Open(ctx caddy.Context, opts store.Options) (store.Backend, error) {
	o := &goredis.UniversalOptions{
		Addrs:      s.Address,
		MasterName: s.MasterName,
		Username:   s.Username,
		Password:   s.Password,
		DB:         s.DB,
		// every call ends at its context's deadline (store.Timeout for a
		// request's), the connection and TLS handshake included
		ContextTimeoutEnabled: true,
		DialTimeout:           store.Timeout,
		ReadTimeout:           store.Timeout,
		WriteTimeout:          store.Timeout,
		PoolTimeout:           store.Timeout,
		MaxRetries:            1,
	}
	if s.TLS {
		var err error
		if o.TLSConfig, err = s.tlsConfig(); err != nil {
			return nil, err
		}
	}
	client := goredis.NewUniversalClient(o)
	if err := s.checkConfig(ctx, client); err != nil {
		_ = client.Close()
		return nil, err
	}
	warnWithoutPersistence(ctx, client, opts.Logger)
	base := s.KeyPrefix + "{" + opts.Realm + "}:"
	return &redisBackend{client: client, base: base, stream: base + "changes", opts: opts}, nil
}

// checkConfig asks Redis once whether it takes the connection as
// configured: an answer that refuses it is an error naming the cause
// (never the password); no answer at all is not.
func (s *Store) checkConfig(ctx context.Context, client goredis.UniversalClient) error {
	ping, cancel := context.WithTimeout(ctx, store.Timeout)
	defer cancel()
	err := client.Ping(ping).Err()
	where := strings.Join(s.Address, ", ")
	var redisErr goredis.Error
	var tlsErr tls.RecordHeaderError
	var certErr *tls.CertificateVerificationError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &certErr):
		return fmt.Errorf("redis at %s: its TLS certificate does not verify: %v (for a private CA, give it as tls { ca <file> })", where, certErr.Err)
	case strings.Contains(err.Error(), "remote error: tls: "):
		return fmt.Errorf("redis at %s refused the TLS connection: %s (a Redis with tls-auth-clients needs tls { cert <file> key <file> } of a certificate its CA signed)",
			where, err.Error()[strings.Index(err.Error(), "tls: "):])
	case errors.As(err, &redisErr) && isAuthError(redisErr.Error()):
		return fmt.Errorf("redis at %s refused the credentials: %s (check username and password)", where, firstWord(redisErr.Error()))
	case errors.As(err, &tlsErr), s.TLS && speaksPlain(ctx, s.Address[0]):
		return fmt.Errorf("redis at %s does not speak TLS (remove tls, or point address at its TLS port)", where)
	case !s.TLS && speaksTLS(ctx, s.Address[0]):
		return fmt.Errorf("redis at %s speaks TLS (add tls)", where)
	}
	return nil
}

// speaksPlain reports whether the server at addr answers a plain PING,
// as a Redis without TLS does (it waits silently for the rest of a TLS
// client's hello, so the handshake only times out).
func speaksPlain(ctx context.Context, addr string) bool {
	conn, err := (&net.Dialer{Timeout: time.Second}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return false
	}
	defer func() { _ = conn.Close() }()
	_ = conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return false
	}
	reply := make([]byte, 1)
	_, err = conn.Read(reply)
	return err == nil && (reply[0] == '+' || reply[0] == '-')
}

// speaksTLS reports whether the server at addr completes a TLS
// handshake, as a Redis that expects TLS does (it drops a plain client).
func speaksTLS(ctx context.Context, addr string) bool {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	// only whether it speaks TLS at all: the real connection checks the
	// certificate
	conn, err := (&tls.Dialer{Config: &tls.Config{InsecureSkipVerify: true}}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return false
	}
	_ = conn.Close()
	return true
}

// isAuthError reports whether a Redis error reply refuses the
// connection's credentials.
func isAuthError(reply string) bool {
	switch firstWord(reply) {
	case "WRONGPASS", "NOAUTH", "NOPERM":
		return true
	}
	return false
}

// firstWord is the error code of a Redis error reply.
func firstWord(reply string) string {
	code, _, _ := strings.Cut(reply, " ")
	return code
}

// Interface guards
var (
	_ caddy.Provisioner     = (*Store)(nil)
	_ caddy.Validator       = (*Store)(nil)
	_ caddyfile.Unmarshaler = (*Store)(nil)
	_ store.Module          = (*Store)(nil)
	_ store.Backend         = (*redisBackend)(nil)
)

// oneArg reads the one argument of the current subdirective.
func oneArg(d *caddyfile.Dispenser, dst *string) error {
	if !d.AllArgs(dst) {
		return d.ArgErr()
	}
	return nil
}
