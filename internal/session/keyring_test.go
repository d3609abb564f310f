package session

import (
	"encoding/base64"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/account"
)

func testSession() *Session {
	return &Session{User: "ada é", ID: [16]byte(Random(16)), Counter: 7, Generation: 1<<40 + 3, Account: account.Tag(Random(account.TagLen)),
		Issued: time.Unix(100, 0), Expires: time.Unix(200, 0), LastSeen: time.Unix(150, 0), Factors: 2, Method: MethodPasskey}
}

func TestSealOpen(t *testing.T) {
	kr, err := NewKeyring([][]byte{Random(32)}, "miniapp")
	if err != nil {
		t.Fatal(err)
	}
	s := testSession()
	v := kr.Seal(PurposeSession, s, "c", "h")
	got, err := kr.Open(PurposeSession, v, "c", "h")
	if err != nil || got.User != s.User || got.ID != s.ID || got.Counter != 7 || got.Generation != s.Generation || got.Account != s.Account || got.Factors != 2 || got.Method != MethodPasskey ||
		!got.Issued.Equal(s.Issued) || !got.Expires.Equal(s.Expires) || !got.LastSeen.Equal(s.LastSeen) {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	if _, err := kr.Open(PurposeSession, v, "c", "other.example"); err == nil {
		t.Error("a cookie opened for another host")
	}
	if _, err := kr.Open(PurposeSession, v, "d", "h"); err == nil {
		t.Error("a cookie opened under another cookie name")
	}
	if v2 := kr.Seal(PurposeSession, s, "c", "h"); v2 == v {
		t.Error("two seals of one session are equal: the nonce is not random")
	}
	if _, err := kr.Open(PurposeSession, strings.Repeat("A", maxCookieLen+1), "c", "h"); err != errMalformed {
		t.Errorf("an oversized value: %v", err)
	}
}

// TestRotation: a ring with a new key first opens cookies of the old
// one and seals with the new; a ring without the old key refuses them;
// a ring of another realm opens nothing of this one.
func TestRotation(t *testing.T) {
	oldKey, newKey := Random(32), Random(48)
	old, _ := NewKeyring([][]byte{oldKey}, "miniapp")
	rotated, _ := NewKeyring([][]byte{newKey, oldKey}, "miniapp")
	dropped, _ := NewKeyring([][]byte{newKey}, "miniapp")
	otherRealm, _ := NewKeyring([][]byte{oldKey}, "staff")
	s := testSession()
	v := old.Seal(PurposeSession, s, "c", "h")
	if _, err := rotated.Open(PurposeSession, v, "c", "h"); err != nil {
		t.Errorf("old-key cookie after rotation: %v", err)
	}
	if _, err := old.Open(PurposeSession, rotated.Seal(PurposeSession, s, "c", "h"), "c", "h"); err == nil {
		t.Error("a ring without the new key opened its cookie")
	}
	if _, err := dropped.Open(PurposeSession, v, "c", "h"); err == nil {
		t.Error("cookie of a removed key opened")
	}
	if _, err := otherRealm.Open(PurposeSession, v, "c", "h"); err == nil {
		t.Error("cookie of another realm opened")
	}
}

func TestDecodeSecret(t *testing.T) {
	key := Random(32)
	for _, ok := range []string{
		base64.StdEncoding.EncodeToString(key), base64.RawStdEncoding.EncodeToString(key),
		base64.URLEncoding.EncodeToString(key), base64.RawURLEncoding.EncodeToString(key),
	} {
		if got, err := DecodeSecret(ok); err != nil || string(got) != string(key) {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "short", base64.StdEncoding.EncodeToString(key[:31]), "!!!!" + base64.StdEncoding.EncodeToString(key)} {
		_, err := DecodeSecret(bad)
		if err == nil {
			t.Errorf("%q accepted", bad)
		} else if bad != "" && strings.Contains(err.Error(), bad) {
			t.Errorf("error repeats the key: %v", err)
		}
	}
	if s, err := DecodeSecret(NewSecret()); err != nil || len(s) != 32 {
		t.Errorf("a new secret: %d bytes, %v", len(s), err)
	}
}

// TestPurposes: a value sealed for one purpose opens for that purpose
// alone, for every pair of purposes, even under the same cookie name and
// host and with the same secrets.
func TestPurposes(t *testing.T) {
	kr, err := NewKeyring([][]byte{Random(32), Random(32)}, "miniapp")
	if err != nil {
		t.Fatal(err)
	}
	s := testSession()
	for sealed := PurposeSession; sealed <= purposes; sealed++ {
		v := kr.Seal(sealed, s, "c", "h")
		for opened := PurposeSession; opened <= purposes; opened++ {
			_, err := kr.Open(opened, v, "c", "h")
			if (err == nil) != (sealed == opened) {
				t.Errorf("sealed for %v, opened for %v: %v", sealed, opened, err)
			}
		}
	}
	if _, err := kr.Open(0, kr.Seal(PurposeSession, s, "c", "h"), "c", "h"); err == nil {
		t.Error("a value opened for no purpose")
	}
	if _, err := kr.Open(purposes+1, kr.Seal(PurposeSession, s, "c", "h"), "c", "h"); err == nil {
		t.Error("a value opened for an unknown purpose")
	}
}

// TestOlderVersions: a cookie of version 3, issued before sessions
// recorded their factors, still opens, as a password's session of one
// factor; one of version 4, before they recorded their method, as a
// password's.
func TestOlderVersions(t *testing.T) {
	kr, err := NewKeyring([][]byte{Random(32)}, "miniapp")
	if err != nil {
		t.Fatal(err)
	}
	s := testSession()
	v5 := kr.Seal(PurposeSession, s, "c", "h")
	raw, _ := base64.RawURLEncoding.DecodeString(v5)
	k := kr.keys[PurposeSession][0]
	plain, err := k.aead.Open(nil, nil, raw[keyIDLen:], append([]byte{byte(PurposeSession)}, "c\x00h"...))
	if err != nil {
		t.Fatal(err)
	}
	if plain[0] != 5 {
		t.Errorf("a session that is no guest's sealed as version %d: older nodes open only 5", plain[0])
	}
	plain[0] = 3
	v3 := append(plain[:v3HeaderLen:v3HeaderLen], plain[sessionHeaderLen:]...)
	got, err := kr.Open(PurposeSession, kr.seal(PurposeSession, v3, "c", "h"), "c", "h")
	if err != nil || got.User != s.User || got.ID != s.ID || got.Factors != 1 || got.Method != MethodPassword {
		t.Fatalf("a version 3 cookie: %+v %v", got, err)
	}
	plain[0] = 4
	v4 := append(plain[:v4HeaderLen:v4HeaderLen], plain[sessionHeaderLen:]...)
	got, err = kr.Open(PurposeSession, kr.seal(PurposeSession, v4, "c", "h"), "c", "h")
	if err != nil || got.User != s.User || got.Factors != 2 || got.Method != MethodPassword {
		t.Fatalf("a version 4 cookie: %+v %v", got, err)
	}
	plain[0] = 6
	if _, err := kr.Open(PurposeSession, kr.seal(PurposeSession, plain, "c", "h"), "c", "h"); err == nil {
		t.Error("a version 6 cookie without a guest's claims opened")
	}
	plain[0] = 7
	if _, err := kr.Open(PurposeSession, kr.seal(PurposeSession, plain, "c", "h"), "c", "h"); err == nil {
		t.Error("a cookie of an unknown version opened")
	}
}

// TestGuestCookie: a guest's claims travel in the cookie (version 6)
// and come back as they went, without groups too.
func TestGuestCookie(t *testing.T) {
	kr, err := NewKeyring([][]byte{Random(32)}, "miniapp")
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range []*Guest{{Name: "Erin E", Email: "erin@example.test", Groups: []string{"staff", "ops"}}, {Name: "erin"}} {
		s := testSession()
		s.User, s.Guest = "company:sub-1", g
		got, err := kr.Open(PurposeSession, kr.Seal(PurposeSession, s, "c", "h"), "c", "h")
		if err != nil || got.User != s.User || got.Guest == nil || got.Guest.Name != g.Name || got.Guest.Email != g.Email ||
			!slices.Equal(got.Guest.Groups, g.Groups) || got.Method != s.Method {
			t.Errorf("a guest's cookie: %+v %+v %v", got, got.Guest, err)
		}
	}
	if got, _ := kr.Open(PurposeSession, kr.Seal(PurposeSession, testSession(), "c", "h"), "c", "h"); got.Guest != nil {
		t.Error("an account's session opened as a guest's")
	}
}

// TestSealData: data opens for its purpose and name only, and tells
// whether the first key sealed it, so records can be sealed again before
// an old key goes.
func TestSealData(t *testing.T) {
	oldKey, newKey := Random(32), Random(32)
	old, err := NewKeyring([][]byte{oldKey}, "miniapp")
	if err != nil {
		t.Fatal(err)
	}
	rotated, err := NewKeyring([][]byte{newKey, oldKey}, "miniapp")
	if err != nil {
		t.Fatal(err)
	}
	v := old.SealData(PurposeRecord, []byte("the secret"), "totp:ada")
	if strings.Contains(v, "the secret") {
		t.Fatal("sealed data shows its text")
	}
	if data, current, err := old.OpenData(PurposeRecord, v, "totp:ada"); err != nil || !current || string(data) != "the secret" {
		t.Fatalf("open: %q %v %v", data, current, err)
	}
	if data, current, err := rotated.OpenData(PurposeRecord, v, "totp:ada"); err != nil || current || string(data) != "the secret" {
		t.Fatalf("open after rotation: %q %v %v, want the data, not current", data, current, err)
	}
	if _, _, err := old.OpenData(PurposeRecord, v, "totp:bob"); err == nil {
		t.Error("data opened under another name")
	}
	if _, _, err := old.OpenData(PurposeEnrollment, v, "totp:ada"); err == nil {
		t.Error("data opened for another purpose")
	}
	if _, _, err := old.OpenData(PurposeRecord, v[:len(v)-2]+"AA", "totp:ada"); err == nil {
		t.Error("altered data opened")
	}
	if _, _, err := old.OpenData(PurposeRecord, strings.Repeat("A", maxDataLen+1), "totp:ada"); err == nil {
		t.Error("an oversized value opened")
	}
}

// TestOpenConcurrently: cookies of names, hosts and users of many
// lengths, opened at once and one after another in buffers kept between
// calls, each open to their own session and bindings only.
func TestOpenConcurrently(t *testing.T) {
	kr, err := NewKeyring([][]byte{Random(32)}, "miniapp")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 8 {
		s := testSession()
		s.User = strings.Repeat("u", 1+i*40)
		name, host := strings.Repeat("c", 1+i*7), strings.Repeat("h", 60-i*7)
		v := kr.Seal(PurposeSession, s, name, host)
		wg.Go(func() {
			for range 300 {
				got, err := kr.Open(PurposeSession, v, name, host)
				if err != nil || got.User != s.User || got.ID != s.ID {
					t.Errorf("user of %d bytes: %v", len(s.User), err)
					return
				}
				if _, err := kr.Open(PurposeSession, v, name, host+"x"); err == nil {
					t.Errorf("user of %d bytes: opened for another host", len(s.User))
					return
				}
			}
		})
	}
	wg.Wait()
}

// TestOneSpelling: a sealed value opens in the one spelling Seal gave
// it; another spelling of its last character, which a lenient base64
// decoder reads as the same bytes, does not open.
func TestOneSpelling(t *testing.T) {
	kr, err := NewKeyring([][]byte{Random(32)}, "miniapp")
	if err != nil {
		t.Fatal(err)
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	// others are the other spellings of v that decode leniently to the
	// same bytes
	others := func(v string) []string {
		want, _ := base64.RawURLEncoding.DecodeString(v)
		var out []string
		for _, c := range alphabet {
			alt := v[:len(v)-1] + string(c)
			if got, err := base64.RawURLEncoding.DecodeString(alt); alt != v && err == nil && string(got) == string(want) {
				out = append(out, alt)
			}
		}
		return out
	}
	seen := 0
	for _, user := range []string{"a", "ab", "abc"} {
		s := testSession()
		s.User = user
		v := kr.Seal(PurposeSession, s, "c", "h")
		if _, err := kr.Open(PurposeSession, v, "c", "h"); err != nil {
			t.Fatalf("%q: %v", user, err)
		}
		for _, alt := range others(v) {
			seen++
			if _, err := kr.Open(PurposeSession, alt, "c", "h"); err == nil {
				t.Errorf("%q: another spelling opened", user)
			}
		}
		data := kr.SealData(PurposeRecord, []byte(user), "totp:ada")
		for _, alt := range others(data) {
			seen++
			if _, _, err := kr.OpenData(PurposeRecord, alt, "totp:ada"); err == nil {
				t.Errorf("%q: another spelling of data opened", user)
			}
		}
	}
	if seen == 0 {
		t.Fatal("no value had another spelling: the test tried nothing")
	}
}
