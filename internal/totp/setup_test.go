package totp

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"image/png"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/session"
)

// checkSetup checks a setup's secret, otpauth:// URI and QR code.
func checkSetup(t *testing.T, st Setup, issuer, user string) {
	t.Helper()
	if len(st.Secret) != 32 || strings.Trim(st.Secret, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") != "" {
		t.Errorf("secret %q", st.Secret)
	}
	u, err := url.Parse(st.URI)
	if err != nil || u.Scheme != "otpauth" || u.Host != "totp" || u.Path != "/"+issuer+":"+user {
		t.Errorf("URI %q: %v", st.URI, err)
	} else {
		q := u.Query()
		if q.Get("secret") != st.Secret || q.Get("issuer") != issuer || q.Get("digits") != "6" || q.Get("period") != "30" || q.Get("algorithm") != "SHA1" {
			t.Errorf("URI parameters %v", q)
		}
	}
	data, ok := strings.CutPrefix(st.QR, "data:image/png;base64,")
	if !ok {
		t.Fatalf("QR %.40q is not a PNG data URL", st.QR)
	}
	raw, err := base64.StdEncoding.DecodeString(data)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(raw))
	if err != nil || img.Bounds().Dx() != 240 || img.Bounds().Dy() != 240 {
		t.Errorf("QR image: %v %v", img.Bounds(), err)
	}
}

// TestNewSetup: a new secret, its URI and QR code, and a sealed setup
// that opens for the user's session with what was sealed, and confirms
// with the secret's first code.
func TestNewSetup(t *testing.T) {
	s, _ := newService(t, t.TempDir(), time.Hour, new(session.Clock))
	sid := [16]byte(session.Random(16))
	for _, steppedUp := range []bool{false, true} {
		st, err := s.NewSetup("Example Corp", "ada", sid, steppedUp)
		if err != nil {
			t.Fatal(err)
		}
		checkSetup(t, st, "Example Corp", "ada")
		if strings.Contains(st.Enrollment, st.Secret) {
			t.Error("the sealed setup shows the secret")
		}
		e, err := s.OpenEnrollment("ada", sid, st.Enrollment)
		if err != nil || e.Secret != st.Secret || e.SteppedUp != steppedUp || e.Session != hex.EncodeToString(sid[:]) ||
			!near(e.Expires, s.Clock.Now().Add(EnrollmentLifetime).Unix()) {
			t.Errorf("opened %+v, %v", e, err)
		}
	}
	st, _ := s.NewSetup("Example Corp", "ada", sid, false)
	other, _ := s.NewSetup("Example Corp", "ada", sid, false)
	if st.Secret == other.Secret {
		t.Error("two setups share a secret")
	}
	e, _ := s.OpenEnrollment("ada", sid, st.Enrollment)
	if _, _, err := s.Enrol(context.Background(), "ada", e.Secret, codeAt(t, e.Secret, s.Clock.Now())); err != nil {
		t.Errorf("confirming the setup: %v", err)
	}
}

// TestOpenEnrollment: another session's setup, another user's, one
// past its lifetime, one sealed for another purpose or edited is
// ErrSetupExpired.
func TestOpenEnrollment(t *testing.T) {
	sid := [16]byte(session.Random(16))
	for _, tc := range []struct {
		name   string
		open   func(s *Service, sealed string) error
		wantOK bool
	}{
		{"as sealed", func(s *Service, sealed string) error { _, err := s.OpenEnrollment("ada", sid, sealed); return err }, true},
		{"seconds before it expires", func(s *Service, sealed string) error {
			s.Clock.Advance(EnrollmentLifetime - 3*time.Second)
			_, err := s.OpenEnrollment("ada", sid, sealed)
			return err
		}, true},
		{"expired", func(s *Service, sealed string) error {
			s.Clock.Advance(EnrollmentLifetime)
			_, err := s.OpenEnrollment("ada", sid, sealed)
			return err
		}, false},
		{"another session's", func(s *Service, sealed string) error {
			_, err := s.OpenEnrollment("ada", [16]byte{1}, sealed)
			return err
		}, false},
		{"another user's", func(s *Service, sealed string) error { _, err := s.OpenEnrollment("grace", sid, sealed); return err }, false},
		{"edited", func(s *Service, sealed string) error {
			b := []byte(sealed)
			b[len(b)/2] ^= 1
			_, err := s.OpenEnrollment("ada", sid, string(b))
			return err
		}, false},
		{"empty", func(s *Service, _ string) error { _, err := s.OpenEnrollment("ada", sid, ""); return err }, false},
		{"a record sealed under the name", func(s *Service, _ string) error {
			data, _ := json.Marshal(Enrollment{Secret: testSecret, Session: hex.EncodeToString(sid[:]), Expires: s.Clock.Now().Add(time.Hour).Unix()})
			_, err := s.OpenEnrollment("ada", sid, s.Records.Keys.SealData(session.PurposeRecord, data, "totp:ada"))
			return err
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := newService(t, t.TempDir(), time.Hour, new(session.Clock))
			st, err := s.NewSetup("example.test", "ada", sid, false)
			if err != nil {
				t.Fatal(err)
			}
			err = tc.open(s, st.Enrollment)
			if tc.wantOK != (err == nil) || (err != nil && !errors.Is(err, ErrSetupExpired)) {
				t.Errorf("%v, want ok %v", err, tc.wantOK)
			}
		})
	}
}

// TestSetupAgain: the same secret gives the same URI and the setup it
// is given back; what is no secret is refused.
func TestSetupAgain(t *testing.T) {
	s, _ := newService(t, t.TempDir(), time.Hour, new(session.Clock))
	st, err := s.NewSetup("example.test", "ada", [16]byte{}, false)
	if err != nil {
		t.Fatal(err)
	}
	again, err := SetupAgain("example.test", "ada", st.Secret, st.Enrollment)
	if err != nil || again.Secret != st.Secret || again.URI != st.URI || again.Enrollment != st.Enrollment {
		t.Fatalf("again: %+v %v", again, err)
	}
	checkSetup(t, again, "example.test", "ada")
	for _, bad := range []string{"", "not base32!", "JBSWY3DPEHPK3PXP" /* 80 bits */, testSecret + "="} {
		if _, err := SetupAgain("example.test", "ada", bad, st.Enrollment); err == nil {
			t.Errorf("secret %q accepted", bad)
		}
	}
}
