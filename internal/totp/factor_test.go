package totp

import (
	"strings"
	"testing"
	"time"

	rfc6238 "github.com/pquerna/otp/totp"
)

// codeAt is the secret's code for the time step of t.
func codeAt(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	code, err := rfc6238.GenerateCodeCustom(secret, at, totpOpts)
	if err != nil {
		t.Fatal(err)
	}
	return code
}

// TestTOTPSteps: a code of the step before, the step itself and the step
// after is accepted, two steps away is not; each step's code works once,
// and once a step is used no earlier one works.
func TestTOTPSteps(t *testing.T) {
	key, err := NewKey("example.com", "ada")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(key.URL(), "issuer=example.com") || len(key.Secret()) != 32 {
		t.Fatalf("key %s", key.URL())
	}
	// 10:00:29, the last second of a step
	now := time.Date(2026, 11, 30, 10, 0, 29, 0, time.UTC)
	f := &Factor{Secret: key.Secret()}
	for _, tc := range []struct {
		at time.Time
		ok bool
	}{
		{now.Add(-60 * time.Second), false},
		{now.Add(60 * time.Second), false}, // two steps ahead
		{now.Add(-29 * time.Second), true}, // the first second of this step
		{now.Add(30 * time.Second), true},
		{now, false}, // earlier than the step just used
	} {
		_, _, err := f.Use(codeAt(t, f.Secret, tc.at), now)
		if (err == nil) != tc.ok {
			t.Errorf("code of %v at %v: %v", tc.at, now, err)
		}
		if err == nil {
			next, kind, _ := f.Use(codeAt(t, f.Secret, tc.at), now)
			f = next
			if kind != ByCode || f.LastStep != tc.at.Unix()/30 {
				t.Fatalf("used as %q, last step %d", kind, f.LastStep)
			}
		}
	}
	fresh := &Factor{Secret: key.Secret()}
	prev := codeAt(t, f.Secret, now.Add(-30*time.Second))
	used, _, err := fresh.Use(prev, now)
	if err != nil {
		t.Fatalf("the step before: %v", err)
	}
	if _, _, err := used.Use(prev, now); err != ErrReplayed {
		t.Errorf("the same code again: %v, want ErrReplayed", err)
	}
	if _, _, err := used.Use(codeAt(t, f.Secret, now), now); err != nil {
		t.Errorf("the next step's code: %v", err)
	}
	if _, _, err := fresh.Use("12345", now); err != ErrWrongCode {
		t.Errorf("five digits: %v", err)
	}
}

// TestRecoveryCodes: ten codes of 60 bits, each accepted once, typed in
// any case and with or without dashes; a code of another set is not.
func TestRecoveryCodes(t *testing.T) {
	f := &Factor{Secret: "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"}
	codes := f.NewRecovery()
	if len(codes) != RecoveryCodes || len(f.Recovery) != RecoveryCodes {
		t.Fatalf("%d codes, %d hashes", len(codes), len(f.Recovery))
	}
	seen := map[string]bool{}
	for _, c := range codes {
		if len(c) != 14 || seen[c] || strings.Contains(strings.Join(f.Recovery, ""), strings.ReplaceAll(c, "-", "")) {
			t.Fatalf("code %q: wrong length, repeated, or stored in clear", c)
		}
		seen[c] = true
	}
	now := time.Now()
	next, kind, err := f.Use(strings.ToUpper(strings.ReplaceAll(codes[3], "-", " ")), now)
	if err != nil || kind != ByRecovery || len(next.Recovery) != RecoveryCodes-1 {
		t.Fatalf("a recovery code: %v %q, %d left", err, kind, len(next.Recovery))
	}
	if len(f.Recovery) != RecoveryCodes {
		t.Fatal("Use changed the factor it was given")
	}
	if _, _, err := next.Use(codes[3], now); err != ErrWrongCode {
		t.Errorf("a recovery code used twice: %v", err)
	}
	other := &Factor{}
	otherCodes := other.NewRecovery()
	if _, _, err := f.Use(otherCodes[0], now); err != ErrWrongCode {
		t.Errorf("another set's code: %v", err)
	}
	for _, bad := range []string{"", "abcd-efgh-jkm", "abcd-efgh-jkmnp", "abcd-efgh-jku!"} {
		if _, _, err := f.Use(bad, now); err != ErrWrongCode {
			t.Errorf("%q: %v", bad, err)
		}
	}
	if err := CheckCode(strings.Repeat("1", 33)); err == nil {
		t.Error("a 33-byte code passed CheckCode")
	}
	if err := CheckCode("12\n456"); err == nil {
		t.Error("a code with a newline passed CheckCode")
	}
}
