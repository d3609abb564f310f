package account

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/caddyauth"
	"golang.org/x/crypto/bcrypt"
)

// bcryptEncoding is bcrypt's own base64 alphabet, used to make fake hashes.
var bcryptEncoding = base64.NewEncoding("./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789").WithPadding(base64.NoPadding)

// defaultHash gives the fake hash its parameters when no account has a
// password: bcrypt at cost 14, as caddy hash-password makes it.
const defaultHash = "$2a$14$"

// hashParams is the part of a hash that names its algorithm and cost:
// "$2a$14$" for bcrypt, "$argon2id$v=19$m=47104,t=1,p=1" for argon2id.
func hashParams(hash string) string {
	if strings.HasPrefix(hash, "$argon2id$") {
		return strings.Join(strings.SplitN(hash, "$", 5)[:4], "$")
	}
	return hash[:7]
}

// costOf names what checking a hash costs: its parameters, with
// bcrypt's $2a$, $2b$ and $2y$ one.
func costOf(hash string) string {
	if p := hashParams(hash); !strings.HasPrefix(p, "$2") {
		return p
	}
	return "$2$" + hash[4:7]
}

// comparerFor checks that hash parses and returns Caddy's comparer for
// the algorithm the hash names.
func comparerFor(hash string) (caddyauth.Comparer, error) {
	var algorithm string
	switch {
	case strings.HasPrefix(hash, "$2a$"), strings.HasPrefix(hash, "$2b$"), strings.HasPrefix(hash, "$2y$"):
		if _, err := bcrypt.Cost([]byte(hash)); err != nil {
			return nil, fmt.Errorf("password hash is not valid bcrypt: %v", err)
		}
		algorithm = "bcrypt"
	case strings.HasPrefix(hash, "$argon2id$"):
		if _, _, err := caddyauth.DecodeHash([]byte(hash)); err != nil {
			return nil, fmt.Errorf("password hash is not valid argon2id: %v", err)
		}
		algorithm = "argon2id"
	default:
		return nil, errors.New("password hash must be bcrypt ($2a$...) or argon2id ($argon2id$...), as printed by caddy hash-password")
	}
	info, err := caddy.GetModule("http.authentication.hashes." + algorithm)
	if err != nil {
		return nil, err
	}
	return info.New().(caddyauth.Comparer), nil
}

// fakeHashLike returns a hash with the same algorithm and parameters as
// hash but a random salt and digest, so that no password matches it.
func fakeHashLike(hash string) ([]byte, error) {
	if strings.HasPrefix(hash, "$argon2id$") {
		parts := strings.Split(hash, "$")
		for _, i := range []int{4, 5} {
			raw, err := base64.RawStdEncoding.DecodeString(parts[i])
			if err != nil {
				return nil, err
			}
			parts[i] = base64.RawStdEncoding.EncodeToString(randomBytes(len(raw)))
		}
		return []byte(strings.Join(parts, "$")), nil
	}
	// bcrypt: the parameters, then 22 characters of salt and 31 of digest
	salt := bcryptEncoding.EncodeToString(randomBytes(16))
	digest := bcryptEncoding.EncodeToString(randomBytes(23))
	return []byte(hashParams(hash) + salt + digest), nil
}

// randomBytes returns n bytes from the system's secure random source.
func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails; crashes the program if the source does
	return b
}
