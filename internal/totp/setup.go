package totp

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"image/png"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/session"
	"github.com/pquerna/otp"
)

// EnrollmentLifetime bounds a setup between its secret and the first
// code.
const EnrollmentLifetime = 10 * time.Minute

// ErrSetupExpired is a setup that is expired, forged or another
// session's.
var ErrSetupExpired = errors.New("the setup has expired or is not this session's; start again")

// Enrollment is a factor being set up: sealed for its purpose into the
// form's hidden field, bound to the user and the session, for
// EnrollmentLifetime. Nothing is stored until the first code confirms
// it.
type Enrollment struct {
	// Secret is the new secret.
	Secret string `json:"secret"`
	// Session is the session's ID, hex.
	Session string `json:"session"`
	// Expires is when the setup ends, in Unix seconds.
	Expires int64 `json:"expires"`
	// SteppedUp is whether the setup began after the step-up policy let
	// it through (a JSON begin): its confirmation needs no second proof,
	// which a code used once could not give again.
	SteppedUp bool `json:"stepped_up,omitempty"`
}

// seal seals a new secret's setup for the user's session.
func (s *Service) seal(user string, sessionID [16]byte, secret string, steppedUp bool) string {
	data, _ := json.Marshal(Enrollment{Secret: secret, Session: hex.EncodeToString(sessionID[:]),
		Expires: s.Clock.Now().Add(EnrollmentLifetime).Unix(), SteppedUp: steppedUp})
	return s.Records.Keys.SealData(session.PurposeEnrollment, data, s.key(user))
}

// OpenEnrollment opens the setup of the user's session, refusing
// another session's or an expired one with ErrSetupExpired.
func (s *Service) OpenEnrollment(user string, sessionID [16]byte, value string) (Enrollment, error) {
	data, _, err := s.Records.Keys.OpenData(session.PurposeEnrollment, value, s.key(user))
	var e Enrollment
	if err != nil || json.Unmarshal(data, &e) != nil || e.Session != hex.EncodeToString(sessionID[:]) || s.Clock.Now().Unix() >= e.Expires {
		return e, ErrSetupExpired
	}
	return e, nil
}

// Setup is a new secret's setup as the JSON answer gives it and the
// page shows it (with its QR code).
type Setup struct {
	// Secret is the key in base32.
	Secret string `json:"secret"`
	// URI is its otpauth:// URI.
	URI string `json:"uri"`
	// Enrollment is the sealed setup the confirmation sends back.
	Enrollment string `json:"enrollment"`
	// QR is the URI's QR code, a data: URL of a PNG.
	QR string `json:"-"`
}

// NewSetup makes a new secret and its setup for the user's session,
// named issuer in authenticator apps; steppedUp says the step-up policy
// let it through already.
func (s *Service) NewSetup(issuer, user string, sessionID [16]byte, steppedUp bool) (Setup, error) {
	key, err := NewKey(issuer, user)
	if err != nil {
		return Setup{}, err
	}
	return setupOf(key, s.seal(user, sessionID, key.Secret(), steppedUp))
}

// SetupAgain is the setup of a secret being set up, again, after a
// wrong first code: the key the app has now.
func SetupAgain(issuer, user, secret, enrollment string) (Setup, error) {
	key, err := KeyOf(issuer, user, secret)
	if err != nil {
		return Setup{}, err
	}
	return setupOf(key, enrollment)
}

// setupOf is the setup of a key with its sealed enrollment, and its QR
// code.
func setupOf(key *otp.Key, enrollment string) (Setup, error) {
	img, err := key.Image(240, 240)
	if err != nil {
		return Setup{}, err
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return Setup{}, err
	}
	return Setup{Secret: key.Secret(), URI: key.URL(), Enrollment: enrollment,
		QR: "data:image/png;base64," + base64.StdEncoding.EncodeToString(buf.Bytes())}, nil
}
