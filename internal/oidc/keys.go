package oidc

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// keysRecord names the realm's signing keys in its store.
const keysRecord = "oidc-keys"

// PublishAhead is how long a new signing key is listed before it signs,
// so that relying parties that cache the key set know it first.
const PublishAhead = time.Hour

// signingKey is one of the realm's RSA keys, as its record keeps it.
type signingKey struct {
	KID string `json:"kid"`
	// DER is the private key, PKCS #8.
	DER []byte `json:"key"`
	// Signs is when it begins to sign; Retires, when it leaves the key
	// set (zero: while it is the newest).
	Signs   int64 `json:"signs"`
	Retires int64 `json:"retires,omitempty"`

	private *rsa.PrivateKey
}

// keySet is the realm's signing keys, oldest first.
type keySet struct {
	Keys []signingKey `json:"keys"`
}

// newSigningKey makes an RSA key of 2048 bits that signs from then.
func newSigningKey(signs time.Time) (signingKey, error) {
	private, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return signingKey{}, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(private)
	if err != nil {
		return signingKey{}, err
	}
	pub, _ := x509.MarshalPKIXPublicKey(&private.PublicKey)
	sum := sha256.Sum256(pub)
	return signingKey{KID: base64.RawURLEncoding.EncodeToString(sum[:12]), DER: der, Signs: signs.Unix(), private: private}, nil
}

// parse fills in the private keys.
func (ks *keySet) parse() error {
	for i := range ks.Keys {
		k, err := x509.ParsePKCS8PrivateKey(ks.Keys[i].DER)
		private, ok := k.(*rsa.PrivateKey)
		if err != nil || !ok {
			return errors.New("a signing key of the store does not parse")
		}
		ks.Keys[i].private = private
	}
	return nil
}

// signing is the key that signs at now: the newest whose time has come.
func (ks *keySet) signing(now time.Time) *signingKey {
	for i := len(ks.Keys) - 1; i >= 0; i-- {
		if ks.Keys[i].Signs <= now.Unix() {
			return &ks.Keys[i]
		}
	}
	if len(ks.Keys) > 0 {
		return &ks.Keys[0]
	}
	return nil
}

// listed are the keys the key set shows at now: every key not retired.
func (ks *keySet) listed(now time.Time) []signingKey {
	return slices.DeleteFunc(slices.Clone(ks.Keys), func(k signingKey) bool { return k.Retires != 0 && k.Retires <= now.Unix() })
}

// keyCache holds the key set as last read from its record.
type keyCache struct {
	mu     sync.Mutex
	sealed []byte
	set    *keySet
}

// keys returns the realm's signing keys, read again when another node
// changed their record.
func (p *Provider) keys() (*keySet, error) {
	sealed := p.records.Get(keysRecord)
	p.keyCache.mu.Lock()
	defer p.keyCache.mu.Unlock()
	if p.keyCache.set != nil && bytes.Equal(sealed, p.keyCache.sealed) {
		return p.keyCache.set, nil
	}
	if sealed == nil {
		return nil, errors.New("the realm has no signing key yet")
	}
	set := new(keySet)
	if err := p.records.Open(keysRecord, sealed, set); err != nil {
		return nil, err
	}
	if err := set.parse(); err != nil {
		return nil, err
	}
	p.keyCache.sealed, p.keyCache.set = sealed, set
	return set, nil
}

// keySet is the realm's signing keys, made now if the start could not
// (the store did not answer then).
func (p *Provider) keySet(ctx context.Context) (*keySet, error) {
	set, err := p.keys()
	if err != nil {
		if err = p.ensureKey(ctx); err == nil {
			set, err = p.keys()
		}
	}
	return set, err
}

// ensureKey makes the realm's first signing key, unless a node has; a
// record of keys that does not open (sealed with a key ring no longer
// configured, or edited) is replaced, as nothing could sign with it.
func (p *Provider) ensureKey(ctx context.Context) error {
	if _, err := p.keys(); err == nil {
		return nil
	}
	k, err := newSigningKey(p.clock.Now())
	if err != nil {
		return err
	}
	return p.records.Swap(ctx, keysRecord, func(sealed []byte) ([]byte, error) {
		if sealed != nil {
			if p.records.Open(keysRecord, sealed, new(keySet)) == nil {
				return sealed, nil
			}
			p.logger.Warn("the OpenID Connect signing keys do not open (sealed with a secret_key no longer configured, or edited in the store): a new key replaces them, and ID tokens signed before no longer verify")
		}
		return p.records.Seal(keysRecord, &keySet{Keys: []signingKey{k}}), nil
	})
}

// Rotate publishes a new signing key that signs PublishAhead from now,
// and retires the current one once the tokens it signed have expired;
// keys retired before now leave the set.
func (p *Provider) Rotate(ctx context.Context) (string, error) {
	now := p.clock.Now()
	k, err := newSigningKey(now.Add(PublishAhead))
	if err != nil {
		return "", err
	}
	err = p.records.Swap(ctx, keysRecord, func(sealed []byte) ([]byte, error) {
		set := new(keySet)
		if sealed != nil {
			if err := p.records.Open(keysRecord, sealed, set); err != nil {
				return nil, err
			}
		}
		set.Keys = slices.DeleteFunc(set.Keys, func(k signingKey) bool { return k.Retires != 0 && k.Retires <= now.Unix() })
		for i := range set.Keys {
			if set.Keys[i].Retires == 0 {
				set.Keys[i].Retires = k.Signs + int64(p.idLifetime()/time.Second) + 60
			}
		}
		set.Keys = append(set.Keys, k)
		return p.records.Seal(keysRecord, set), nil
	})
	if err != nil {
		return "", fmt.Errorf("rotating the signing key: %w", err)
	}
	return k.KID, nil
}

// The op.SigningKey and op.Key interfaces.

func (k *signingKey) SignatureAlgorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k *signingKey) Algorithm() jose.SignatureAlgorithm          { return jose.RS256 }
func (k *signingKey) ID() string                                  { return k.KID }
func (k *signingKey) Use() string                                 { return "sig" }

// Key is the private key for signing.
func (k *signingKey) Key() any { return k.private }

// publicKey is a signing key as the key set lists it.
type publicKey struct{ *signingKey }

// Key is the public key.
func (k publicKey) Key() any { return &k.private.PublicKey }
