// Package totp is the second factor of one-time codes (RFC 6238): the
// factor an account keeps in the realm's sealed records, its codes used
// once on every node, its recovery codes, and the setup of a new one.
// It knows the records and the clock; not HTTP, sessions or sign-in.
package totp

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"strings"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/session"
	"github.com/pquerna/otp"
	rfc6238 "github.com/pquerna/otp/totp"
)

// Factor is an account's second factor (RFC 6238): its secret, the last
// time step a code was accepted for, and its unused recovery codes,
// hashed. The handler seals it whole before it reaches a store.
type Factor struct {
	// Secret is the shared secret, base32 without padding.
	Secret string `json:"secret"`
	// LastStep is the time step of the last code accepted: a code of it
	// or of an earlier step is refused (RFC 6238 §5.2).
	LastStep int64 `json:"last_step"`
	// Salt is mixed into the recovery codes' hashes.
	Salt string `json:"salt"`
	// Recovery holds the hex SHA-256 hashes of the unused recovery
	// codes, with Salt.
	Recovery []string `json:"recovery"`
	// Created is when the factor was confirmed, in Unix seconds.
	Created int64 `json:"created"`
}

// The codes every authenticator app makes by default: SHA-1, 6 digits,
// a 30 s step; one step of skew either side is accepted.
const (
	totpPeriod = 30
	totpSkew   = 1
	// RecoveryCodes is how many recovery codes a factor gets.
	RecoveryCodes = 10
)

var totpOpts = rfc6238.ValidateOpts{Period: totpPeriod, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}

// NewKey makes a new secret of 160 bits for the user, with the
// issuer an authenticator app shows.
func NewKey(issuer, user string) (*otp.Key, error) {
	return rfc6238.Generate(rfc6238.GenerateOpts{Issuer: issuer, AccountName: user, Period: totpPeriod, SecretSize: 20,
		Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
}

// KeyOf rebuilds the key of a secret being set up, for its
// otpauth:// URI and QR code.
func KeyOf(issuer, user, secret string) (*otp.Key, error) {
	raw, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(secret)
	if err != nil || len(raw) < 16 {
		return nil, errors.New("not a secret")
	}
	return rfc6238.Generate(rfc6238.GenerateOpts{Issuer: issuer, AccountName: user, Period: totpPeriod, Secret: raw,
		Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
}

// Why a code was refused.
var (
	// ErrWrongCode is a code that is neither the secret's for a step
	// within the skew nor an unused recovery code.
	ErrWrongCode = errors.New("wrong code")
	// ErrReplayed is the code of a step already used.
	ErrReplayed = errors.New("code already used")
)

// CodeKind is what kind of code was accepted.
type CodeKind string

// The kinds of codes.
const (
	ByCode     CodeKind = "totp"
	ByRecovery CodeKind = "recovery"
)

// MatchStep returns the time step within the skew at now whose code is
// code, and whether there is one. ValidateCustom only says whether a
// code is valid; the step is what makes a code single use.
func MatchStep(secret, code string, now time.Time) (int64, bool) {
	step := now.Unix() / totpPeriod
	var found int64
	ok := false
	for s := step - totpSkew; s <= step+totpSkew; s++ {
		want, err := rfc6238.GenerateCodeCustom(secret, time.Unix(s*totpPeriod, 0), totpOpts)
		// every step is computed, so the time taken tells nothing
		if err == nil && subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 && (!ok || s > found) {
			found, ok = s, true
		}
	}
	return found, ok
}

// Use checks a code (six digits) or a recovery code at now and returns
// the factor as it is after the code's use: a code's step is remembered,
// a recovery code is gone. The factor itself is not changed.
func (f *Factor) Use(code string, now time.Time) (*Factor, CodeKind, error) {
	next := *f
	next.Recovery = append([]string(nil), f.Recovery...)
	if isDigits(code, 6) {
		step, ok := MatchStep(f.Secret, code, now)
		switch {
		case !ok:
			return nil, "", ErrWrongCode
		case step <= f.LastStep:
			return nil, "", ErrReplayed
		}
		next.LastStep = step
		return &next, ByCode, nil
	}
	normal, ok := normalRecovery(code)
	if !ok {
		return nil, "", ErrWrongCode
	}
	hash := recoveryHash(f.Salt, normal)
	for i, h := range next.Recovery {
		if subtle.ConstantTimeCompare([]byte(h), []byte(hash)) == 1 {
			next.Recovery = append(next.Recovery[:i], next.Recovery[i+1:]...)
			return &next, ByRecovery, nil
		}
	}
	return nil, "", ErrWrongCode
}

// NewRecovery gives the factor a new set of recovery codes and returns
// them, as the user is shown them once: ten codes of 60 bits each.
func (f *Factor) NewRecovery() []string {
	f.Salt = hex.EncodeToString(session.Random(16))
	codes := make([]string, RecoveryCodes)
	f.Recovery = make([]string, RecoveryCodes)
	for i := range codes {
		raw := make([]byte, 12)
		for j, b := range session.Random(12) {
			raw[j] = recoveryAlphabet[b&31]
		}
		codes[i] = string(raw[:4]) + "-" + string(raw[4:8]) + "-" + string(raw[8:])
		f.Recovery[i] = recoveryHash(f.Salt, string(raw))
	}
	return codes
}

// recoveryAlphabet is Crockford's base32 in lower case: no i, l, o or u
// to misread.
const recoveryAlphabet = "0123456789abcdefghjkmnpqrstvwxyz"

// normalRecovery reads a recovery code as typed: any case, with or
// without dashes and spaces, i and l read as 1 and o as 0.
func normalRecovery(code string) (string, bool) {
	var b strings.Builder
	for _, r := range strings.ToLower(code) {
		switch r {
		case '-', ' ':
			continue
		case 'i', 'l':
			r = '1'
		case 'o':
			r = '0'
		}
		if !strings.ContainsRune(recoveryAlphabet, r) || b.Len() >= 12 {
			return "", false
		}
		b.WriteRune(r)
	}
	return b.String(), b.Len() == 12
}

func recoveryHash(salt, code string) string {
	sum := sha256.Sum256([]byte("miniapp recovery code\x00" + salt + "\x00" + code))
	return hex.EncodeToString(sum[:])
}

// isDigits reports whether s is n ASCII digits.
func isDigits(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// CheckCode refuses what cannot be a code: longer than a recovery code
// with its dashes and some spaces, or not printable ASCII.
func CheckCode(code string) error {
	if len(code) > 32 {
		return errors.New("code is too long")
	}
	for i := range len(code) {
		if code[i] < ' ' || code[i] > '~' {
			return errors.New("code must be digits or a recovery code")
		}
	}
	return nil
}
