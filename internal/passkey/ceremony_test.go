package passkey

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/session"
	"github.com/caddy-miniapp/miniapp/internal/testhash"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/go-webauthn/webauthn/protocol/webauthncbor"
	"github.com/go-webauthn/webauthn/protocol/webauthncose"
	"github.com/go-webauthn/webauthn/webauthn"
)

var b64url = base64.RawURLEncoding

// authenticator is a software passkey: one ECDSA P-256 key,
// attestation "none", a signature counter that counts (or stays 0), the
// user handle it was registered with.
type authenticator struct {
	t       *testing.T
	key     *ecdsa.PrivateKey
	id      []byte
	handle  []byte
	rpID    string
	counter uint32
	verify  bool
}

func newAuthenticator(t *testing.T, rpID string) *authenticator {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &authenticator{t: t, key: key, id: session.Random(32), rpID: rpID, verify: true}
}

// authData is the authenticator data: the RP ID hash, flags, counter,
// and the attested credential when creating.
func (a *authenticator) authData(create bool) []byte {
	rpHash := sha256.Sum256([]byte(a.rpID))
	flags := byte(0x01)
	if a.verify {
		flags |= 0x04
	}
	if create {
		flags |= 0x40
	}
	out := binary.BigEndian.AppendUint32(append(rpHash[:], flags), a.counter)
	if !create {
		return out
	}
	pub, err := webauthncbor.Marshal(webauthncose.EC2PublicKeyData{
		PublicKeyData: webauthncose.PublicKeyData{KeyType: 2, Algorithm: -7}, Curve: 1,
		XCoord: a.key.X.FillBytes(make([]byte, 32)), YCoord: a.key.Y.FillBytes(make([]byte, 32)),
	})
	if err != nil {
		a.t.Fatal(err)
	}
	out = binary.BigEndian.AppendUint16(append(out, make([]byte, 16)...), uint16(len(a.id)))
	return append(append(out, a.id...), pub...)
}

func clientData(kind, challenge, origin string) []byte {
	b, _ := json.Marshal(map[string]any{"type": kind, "challenge": challenge, "origin": origin, "crossOrigin": false})
	return b
}

// options reads a ceremony's beginning as the browser gets it.
func options(t *testing.T, begun any) (map[string]any, string) {
	t.Helper()
	b, err := json.Marshal(begun)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	ceremony, _ := out["ceremony"].(string)
	if ceremony == "" || out["publicKey"] == nil {
		t.Fatalf("a ceremony's beginning: %s", b)
	}
	return out["publicKey"].(map[string]any), ceremony
}

// create answers a registration as navigator.credentials.create would.
func (a *authenticator) create(pk map[string]any, origin string) json.RawMessage {
	a.handle, _ = b64url.DecodeString(pk["user"].(map[string]any)["id"].(string))
	att, err := webauthncbor.Marshal(map[string]any{"fmt": "none", "attStmt": map[string]any{}, "authData": a.authData(true)})
	if err != nil {
		a.t.Fatal(err)
	}
	return a.credential(map[string]any{
		"clientDataJSON":    b64url.EncodeToString(clientData("webauthn.create", pk["challenge"].(string), origin)),
		"attestationObject": b64url.EncodeToString(att),
		"transports":        []string{"internal", "a-transport-name-too-long-to-keep"},
	})
}

// get answers a sign-in as navigator.credentials.get would.
func (a *authenticator) get(pk map[string]any, origin string) json.RawMessage {
	data := a.authData(false)
	cd := clientData("webauthn.get", pk["challenge"].(string), origin)
	cdHash := sha256.Sum256(cd)
	digest := sha256.Sum256(append(append([]byte(nil), data...), cdHash[:]...))
	sig, err := ecdsa.SignASN1(rand.Reader, a.key, digest[:])
	if err != nil {
		a.t.Fatal(err)
	}
	return a.credential(map[string]any{
		"clientDataJSON": b64url.EncodeToString(cd), "authenticatorData": b64url.EncodeToString(data),
		"signature": b64url.EncodeToString(sig), "userHandle": b64url.EncodeToString(a.handle),
	})
}

func (a *authenticator) credential(response map[string]any) json.RawMessage {
	b, _ := json.Marshal(map[string]any{"id": b64url.EncodeToString(a.id), "rawId": b64url.EncodeToString(a.id), "type": "public-key",
		"response": response, "clientExtensionResults": map[string]any{}})
	return b
}

// status is the HTTP status of a refusal, 0 for another error.
func status(err error) int {
	if herr, ok := errors.AsType[caddyhttp.HandlerError](err); ok {
		return herr.StatusCode
	}
	return 0
}

const (
	rpHost   = "example.test"
	rpOrigin = "https://example.test"
)

// relyingParty is the fixture's relying party for rpHost over HTTPS.
func (f *fixture) relyingParty(t *testing.T) *webauthn.WebAuthn {
	t.Helper()
	rp, err := f.s.RelyingParty(Site{Host: rpHost, Secure: true})
	if err != nil {
		t.Fatal(err)
	}
	return rp
}

// register registers the authenticator for ada's session.
func (f *fixture) register(t *testing.T, auth *authenticator, sid [16]byte, name string) (Key, error) {
	t.Helper()
	rp := f.relyingParty(t)
	begun, err := f.s.BeginRegistration(rp, f.acct(t, "ada"), sid)
	if err != nil {
		t.Fatal(err)
	}
	pk, ceremony := options(t, begun)
	return f.s.FinishRegistration(context.Background(), rp, f.acct(t, "ada"), sid, Finish{Ceremony: ceremony, Credential: auth.create(pk, rpOrigin), Name: name},
		"Firefox on Linux")
}

// login begins a login and answers it with the authenticator.
func (f *fixture) login(t *testing.T, auth *authenticator) (Assertion, error) {
	t.Helper()
	rp := f.relyingParty(t)
	begun, err := f.s.BeginLogin(rp)
	if err != nil {
		t.Fatal(err)
	}
	pk, ceremony := options(t, begun)
	parsed, err := ParseLogin(Finish{Ceremony: ceremony, Credential: auth.get(pk, rpOrigin)})
	if err != nil {
		t.Fatal(err)
	}
	return f.s.Login(context.Background(), rp, ceremony, parsed)
}

// TestRelyingParty: the RP ID is passkey_rp_id, else the cookie domain,
// else the host; the one origin is the site's; https is required except
// on localhost; the host must be the RP ID or under it, and no IP.
func TestRelyingParty(t *testing.T) {
	for _, tc := range []struct {
		name             string
		rpID, domain     string
		host             string
		secure           bool
		wantID, wantOrig string
	}{
		{"the host", "", "", "example.test", true, "example.test", "https://example.test"},
		{"the host, with a port and in capitals", "", "", "App.Example.Test:8443", true, "app.example.test", "https://app.example.test:8443"},
		{"localhost over http", "", "", "localhost:8080", false, "localhost", "http://localhost:8080"},
		{"localhost over https", "", "", "localhost", true, "localhost", "https://localhost"},
		{"the cookie domain", "", "example.test", "app.example.test", true, "example.test", "https://app.example.test"},
		{"passkey_rp_id before the cookie domain", "app.example.test", "example.test", "app.example.test", true, "app.example.test",
			"https://app.example.test"},
		{"a host under passkey_rp_id", "example.test", "", "deep.app.example.test", true, "example.test", "https://deep.app.example.test"},
		{"plain http", "", "", "example.test", false, "", ""},
		{"plain http under the RP ID", "example.test", "", "app.example.test", false, "", ""},
		{"a host outside passkey_rp_id", "example.test", "", "example.net", true, "", ""},
		{"a host that only ends like the RP ID", "example.test", "", "badexample.test", true, "", ""},
		{"a host outside the cookie domain", "", "example.test", "app.example.net", true, "", ""},
		{"passkey_rp_id outside the cookie domain's host", "other.test", "example.test", "app.example.test", true, "", ""},
		{"an IPv4 address", "", "", "192.0.2.1", true, "", ""},
		{"an IPv6 address", "", "", "[2001:db8::1]:443", true, "", ""},
		{"a host that is no host", "", "", "exa mple.test", true, "", ""},
		{"an empty host", "", "", "", true, "", ""},
		{"a host with a path", "", "", "example.test/x", true, "", ""},
	} {
		s := &Service{RPID: tc.rpID, Domain: tc.domain}
		rp, err := s.RelyingParty(Site{Host: tc.host, Secure: tc.secure})
		if tc.wantID == "" {
			if err == nil || status(err) != http.StatusBadRequest {
				t.Errorf("%s: %v, want a 400", tc.name, err)
			} else if tc.host != "" && strings.Contains(err.Error(), tc.host) {
				t.Errorf("%s: the refusal repeats the host: %v", tc.name, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if rp.Config.RPID != tc.wantID || len(rp.Config.RPOrigins) != 1 || rp.Config.RPOrigins[0] != tc.wantOrig || rp.Config.RPDisplayName != tc.wantID {
			t.Errorf("%s: RP ID %q, origins %q, name %q; want %q %q", tc.name, rp.Config.RPID, rp.Config.RPOrigins, rp.Config.RPDisplayName, tc.wantID, tc.wantOrig)
		}
	}
	rp, err := (&Service{Name: "Example Corp"}).RelyingParty(Site{Host: "example.test", Secure: true})
	if err != nil || rp.Config.RPDisplayName != "Example Corp" {
		t.Errorf("the relying party's name: %v", err)
	}
	if _, err := (&Service{}).RelyingParty(Site{Host: "example.test", Secure: false}); err == nil || !strings.Contains(err.Error(), "https") {
		t.Errorf("plain http says why: %v", err)
	}
}

// TestRegistration: a passkey registered in a session's ceremony is
// stored for the account, named as asked or after the device, with
// what the authenticator said of itself.
func TestRegistration(t *testing.T) {
	f := newFixture(t)
	sid := [16]byte(session.Random(16))
	auth := newAuthenticator(t, rpHost)
	k, err := f.register(t, auth, sid, "my laptop")
	ada := f.acct(t, "ada")
	if err != nil || !bytes.Equal(k.ID, auth.id) || k.Name != "my laptop" || !k.UserVerified || k.Account != ada.ID.Tag() ||
		!near(k.Created, f.s.Clock.Now().Unix()) || len(k.Transports) != 1 || k.Transports[0] != "internal" || k.AttestationType != "none" {
		t.Fatalf("registered %+v, %v", k, err)
	}
	if !bytes.Equal(auth.handle, UserHandle(ada)) {
		t.Error("the registration's user handle is not the account's")
	}
	keys, _, _ := f.s.Of("ada")
	if len(keys) != 1 || !bytes.Equal(keys[0].PublicKey, k.PublicKey) {
		t.Errorf("stored %+v", keys)
	}
	if ok, err := f.s.Verifying(ada); !ok || err != nil {
		t.Errorf("a passkey that verified its user is no second factor: %v", err)
	}
	other := newAuthenticator(t, rpHost)
	other.verify = false
	k2, err := f.register(t, other, sid, "")
	if err != nil || k2.Name != "Firefox on Linux" || k2.UserVerified {
		t.Errorf("a second passkey, unnamed, without user verification: %+v %v", k2, err)
	}
	// the same credential again
	if _, err := f.register(t, auth, sid, "again"); status(err) != http.StatusConflict {
		t.Errorf("a known credential registered again: %v", err)
	}
	// options exclude the account's passkeys
	begun, err := f.s.BeginRegistration(f.relyingParty(t), ada, sid)
	if err != nil {
		t.Fatal(err)
	}
	pk, _ := options(t, begun)
	if excluded, _ := pk["excludeCredentials"].([]any); len(excluded) != 2 {
		t.Errorf("excluded %v", pk["excludeCredentials"])
	}
}

// TestRegistrationRefused: every way a registration's end is refused,
// with its status.
func TestRegistrationRefused(t *testing.T) {
	sid := [16]byte(session.Random(16))
	for _, tc := range []struct {
		name   string
		finish func(t *testing.T, f *fixture, rp *webauthn.WebAuthn, pk map[string]any, ceremony string) error
		status int
		reason string
	}{
		{"a name too long", func(t *testing.T, f *fixture, rp *webauthn.WebAuthn, pk map[string]any, ceremony string) error {
			_, err := f.s.FinishRegistration(context.Background(), rp, f.acct(t, "ada"), sid,
				Finish{Ceremony: ceremony, Credential: newAuthenticator(t, rpHost).create(pk, rpOrigin), Name: strings.Repeat("n", MaxPasskeyName+1)}, "")
			return err
		}, 400, "longer than 64"},
		{"a name with a control character", func(t *testing.T, f *fixture, rp *webauthn.WebAuthn, pk map[string]any, ceremony string) error {
			_, err := f.s.FinishRegistration(context.Background(), rp, f.acct(t, "ada"), sid,
				Finish{Ceremony: ceremony, Credential: newAuthenticator(t, rpHost).create(pk, rpOrigin), Name: "a\nb"}, "")
			return err
		}, 400, "control"},
		{"another session's ceremony", func(t *testing.T, f *fixture, rp *webauthn.WebAuthn, pk map[string]any, ceremony string) error {
			_, err := f.s.FinishRegistration(context.Background(), rp, f.acct(t, "ada"), [16]byte{1},
				Finish{Ceremony: ceremony, Credential: newAuthenticator(t, rpHost).create(pk, rpOrigin)}, "")
			return err
		}, 400, "not this session's"},
		{"expired", func(t *testing.T, f *fixture, rp *webauthn.WebAuthn, pk map[string]any, ceremony string) error {
			f.s.Clock.Advance(CeremonyLifetime)
			_, err := f.s.FinishRegistration(context.Background(), rp, f.acct(t, "ada"), sid,
				Finish{Ceremony: ceremony, Credential: newAuthenticator(t, rpHost).create(pk, rpOrigin)}, "")
			return err
		}, 400, "expired"},
		{"a login's ceremony", func(t *testing.T, f *fixture, rp *webauthn.WebAuthn, _ map[string]any, _ string) error {
			begun, err := f.s.BeginLogin(rp)
			if err != nil {
				t.Fatal(err)
			}
			pk, ceremony := options(t, begun)
			pk["user"] = map[string]any{"id": "AAAA"}
			_, err = f.s.FinishRegistration(context.Background(), rp, f.acct(t, "ada"), sid,
				Finish{Ceremony: ceremony, Credential: newAuthenticator(t, rpHost).create(pk, rpOrigin)}, "")
			return err
		}, 400, "expired or is not valid"},
		{"used twice", func(t *testing.T, f *fixture, rp *webauthn.WebAuthn, pk map[string]any, ceremony string) error {
			in := Finish{Ceremony: ceremony, Credential: newAuthenticator(t, rpHost).create(pk, rpOrigin)}
			if _, err := f.s.FinishRegistration(context.Background(), rp, f.acct(t, "ada"), sid, in, ""); err != nil {
				t.Fatalf("first use: %v", err)
			}
			in.Credential = newAuthenticator(t, rpHost).create(pk, rpOrigin)
			_, err := f.s.FinishRegistration(context.Background(), rp, f.acct(t, "ada"), sid, in, "")
			return err
		}, 400, "used already"},
		{"a malformed answer", func(t *testing.T, f *fixture, rp *webauthn.WebAuthn, _ map[string]any, ceremony string) error {
			_, err := f.s.FinishRegistration(context.Background(), rp, f.acct(t, "ada"), sid,
				Finish{Ceremony: ceremony, Credential: json.RawMessage(`{"id":"x"}`)}, "")
			return err
		}, 400, "malformed"},
		{"another origin", func(t *testing.T, f *fixture, rp *webauthn.WebAuthn, pk map[string]any, ceremony string) error {
			_, err := f.s.FinishRegistration(context.Background(), rp, f.acct(t, "ada"), sid,
				Finish{Ceremony: ceremony, Credential: newAuthenticator(t, rpHost).create(pk, "https://evil.test")}, "")
			return err
		}, 400, ErrRefused.Error()},
		{"another RP ID", func(t *testing.T, f *fixture, rp *webauthn.WebAuthn, pk map[string]any, ceremony string) error {
			_, err := f.s.FinishRegistration(context.Background(), rp, f.acct(t, "ada"), sid,
				Finish{Ceremony: ceremony, Credential: newAuthenticator(t, "evil.test").create(pk, rpOrigin)}, "")
			return err
		}, 400, ErrRefused.Error()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			rp := f.relyingParty(t)
			begun, err := f.s.BeginRegistration(rp, f.acct(t, "ada"), sid)
			if err != nil {
				t.Fatal(err)
			}
			pk, ceremony := options(t, begun)
			err = tc.finish(t, f, rp, pk, ceremony)
			if status(err) != tc.status || !strings.Contains(err.Error(), tc.reason) {
				t.Errorf("%v (%d), want %d %q", err, status(err), tc.status, tc.reason)
			}
			if tc.name != "used twice" {
				if keys, _, _ := f.s.Of("ada"); len(keys) != 0 {
					t.Errorf("a refused registration stored %d passkeys", len(keys))
				}
			}
		})
	}
}

// TestRegistrationName: a refused name leaves the ceremony unused.
func TestRegistrationName(t *testing.T) {
	f := newFixture(t)
	sid := [16]byte(session.Random(16))
	rp := f.relyingParty(t)
	begun, err := f.s.BeginRegistration(rp, f.acct(t, "ada"), sid)
	if err != nil {
		t.Fatal(err)
	}
	pk, ceremony := options(t, begun)
	in := Finish{Ceremony: ceremony, Credential: newAuthenticator(t, rpHost).create(pk, rpOrigin), Name: "a\x00"}
	if _, err := f.s.FinishRegistration(context.Background(), rp, f.acct(t, "ada"), sid, in, ""); status(err) != 400 {
		t.Fatalf("a bad name: %v", err)
	}
	in.Name = "fine"
	if k, err := f.s.FinishRegistration(context.Background(), rp, f.acct(t, "ada"), sid, in, ""); err != nil || k.Name != "fine" {
		t.Errorf("the same ceremony with a good name: %+v %v", k, err)
	}
}

// TestRegistrationLimit: an account with MaxKeys passkeys may not begin
// another; passkeys of an older password hash do not count, and go when
// a new one is registered.
func TestRegistrationLimit(t *testing.T) {
	f := newFixture(t)
	ada := f.acct(t, "ada")
	full := make([]Key, MaxKeys)
	for i := range full {
		full[i] = key(ada, byte(i), true)
	}
	f.put(t, "ada", full...)
	if _, err := f.s.BeginRegistration(f.relyingParty(t), ada, [16]byte{}); status(err) != http.StatusConflict {
		t.Errorf("a 21st passkey: %v", err)
	}
	// the same keys, of a password hash since changed
	changed := loadAccounts(t, testhash.Bcrypt("lovelace-1815"), graceHash)
	newAda, _ := changed.Lookup("ada")
	f.s.SetAccounts(changed.All())
	sid := [16]byte(session.Random(16))
	rp := f.relyingParty(t)
	begun, err := f.s.BeginRegistration(rp, newAda, sid)
	if err != nil {
		t.Fatalf("the older hash's passkeys counted: %v", err)
	}
	pk, ceremony := options(t, begun)
	k, err := f.s.FinishRegistration(context.Background(), rp, newAda, sid, Finish{Ceremony: ceremony, Credential: newAuthenticator(t, rpHost).create(pk, rpOrigin)}, "x")
	if err != nil {
		t.Fatal(err)
	}
	if keys, _, _ := f.s.Of("ada"); len(keys) != 1 || !bytes.Equal(keys[0].ID, k.ID) {
		t.Errorf("after a new hash's registration: %d passkeys", len(keys))
	}
}

// TestLogin: a registered passkey signs in without a name, verified or
// not as the authenticator says; its use is recorded with the session
// it started, which its removal ends.
func TestLogin(t *testing.T) {
	f := newFixture(t)
	auth := newAuthenticator(t, rpHost)
	auth.counter = 1
	if _, err := f.register(t, auth, [16]byte{}, "laptop"); err != nil {
		t.Fatal(err)
	}
	auth.counter = 5
	a, err := f.login(t, auth)
	if err != nil || a.Account != f.acct(t, "ada") || !a.Verified {
		t.Fatalf("login: %+v %v", a, err)
	}
	f.s.Clock.Advance(time.Minute)
	started := session.New("ada", f.acct(t, "ada").ID.Tag(), 0, f.s.Clock.Now(), time.Hour)
	f.s.MarkUsed(context.Background(), a, started)
	keys, _, _ := f.s.Of("ada")
	if len(keys) != 1 || keys[0].SignCount != 5 || !near(keys[0].LastUsed, f.s.Clock.Now().Unix()) || len(keys[0].Sessions) != 1 ||
		keys[0].Sessions[0].ID != started.ID {
		t.Fatalf("after its use: %+v", keys)
	}
	auth.verify = false
	auth.counter = 6
	if a, err := f.login(t, auth); err != nil || a.Verified {
		t.Errorf("without user verification: %+v %v", a, err)
	}
	if _, err := f.s.Remove(context.Background(), "ada", auth.id); err != nil {
		t.Fatal(err)
	}
	if !f.s.Records.Realm.RevokedID(started.ID, started.Expires) {
		t.Error("the session the removed passkey started lives")
	}
	auth.counter = 7
	if _, err := f.login(t, auth); !errors.Is(err, ErrRefused) {
		t.Errorf("a removed passkey: %v", err)
	}
}

// TestLoginRefused: a cloned key, an unknown user handle, a ceremony
// used twice or expired, another origin.
func TestLoginRefused(t *testing.T) {
	t.Run("cloned", func(t *testing.T) {
		f := newFixture(t)
		auth := newAuthenticator(t, rpHost)
		auth.counter = 10
		if _, err := f.register(t, auth, [16]byte{}, ""); err != nil {
			t.Fatal(err)
		}
		auth.counter = 3
		a, err := f.login(t, auth)
		if !errors.Is(err, ErrRefused) || !errors.Is(err, ErrCloned) || a.Account != f.acct(t, "ada") {
			t.Errorf("a counter gone back: %+v %v", a, err)
		}
	})
	t.Run("unknown user handle", func(t *testing.T) {
		f := newFixture(t)
		auth := newAuthenticator(t, rpHost)
		if _, err := f.register(t, auth, [16]byte{}, ""); err != nil {
			t.Fatal(err)
		}
		auth.handle = session.Random(16)
		if _, err := f.login(t, auth); !errors.Is(err, ErrRefused) {
			t.Errorf("an unknown user handle: %v", err)
		}
	})
	t.Run("a record that does not open", func(t *testing.T) {
		f := newFixture(t)
		auth := newAuthenticator(t, rpHost)
		if _, err := f.register(t, auth, [16]byte{}, ""); err != nil {
			t.Fatal(err)
		}
		f.spoil(t, "passkeys:ada")
		if _, err := f.login(t, auth); !errors.Is(err, ErrRefused) {
			t.Errorf("an unreadable record: %v", err)
		}
	})
	for _, tc := range []struct {
		name   string
		finish func(t *testing.T, f *fixture, auth *authenticator, rp *webauthn.WebAuthn, pk map[string]any, ceremony string) error
		status int
		reason string
	}{
		{"used twice", func(t *testing.T, f *fixture, auth *authenticator, rp *webauthn.WebAuthn, pk map[string]any, ceremony string) error {
			parsed, _ := ParseLogin(Finish{Credential: auth.get(pk, rpOrigin)})
			if _, err := f.s.Login(context.Background(), rp, ceremony, parsed); err != nil {
				t.Fatalf("first use: %v", err)
			}
			parsed, _ = ParseLogin(Finish{Credential: auth.get(pk, rpOrigin)})
			_, err := f.s.Login(context.Background(), rp, ceremony, parsed)
			return err
		}, 400, "used already"},
		{"expired", func(t *testing.T, f *fixture, auth *authenticator, rp *webauthn.WebAuthn, pk map[string]any, ceremony string) error {
			f.s.Clock.Advance(CeremonyLifetime)
			parsed, _ := ParseLogin(Finish{Credential: auth.get(pk, rpOrigin)})
			_, err := f.s.Login(context.Background(), rp, ceremony, parsed)
			return err
		}, 400, "expired"},
		{"a registration's ceremony", func(t *testing.T, f *fixture, auth *authenticator, rp *webauthn.WebAuthn, pk map[string]any, _ string) error {
			begun, err := f.s.BeginRegistration(rp, f.acct(t, "ada"), [16]byte{})
			if err != nil {
				t.Fatal(err)
			}
			_, ceremony := options(t, begun)
			parsed, _ := ParseLogin(Finish{Credential: auth.get(pk, rpOrigin)})
			_, err = f.s.Login(context.Background(), rp, ceremony, parsed)
			return err
		}, 400, "expired or is not valid"},
		{"another origin", func(t *testing.T, f *fixture, auth *authenticator, rp *webauthn.WebAuthn, pk map[string]any, ceremony string) error {
			parsed, _ := ParseLogin(Finish{Credential: auth.get(pk, "https://evil.test")})
			_, err := f.s.Login(context.Background(), rp, ceremony, parsed)
			return err
		}, 0, ErrRefused.Error()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			auth := newAuthenticator(t, rpHost)
			if _, err := f.register(t, auth, [16]byte{}, ""); err != nil {
				t.Fatal(err)
			}
			rp := f.relyingParty(t)
			begun, err := f.s.BeginLogin(rp)
			if err != nil {
				t.Fatal(err)
			}
			pk, ceremony := options(t, begun)
			err = tc.finish(t, f, auth, rp, pk, ceremony)
			if err == nil || status(err) != tc.status || !strings.Contains(err.Error(), tc.reason) {
				t.Errorf("%v (%d), want %d %q", err, status(err), tc.status, tc.reason)
			}
		})
	}
}

// TestCeremonySeal: a ceremony is sealed, bound to its kind, and opens
// once.
func TestCeremonySeal(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	data := &webauthn.SessionData{Challenge: "c", Expires: time.Now().Add(time.Hour)}
	sid := [16]byte{7}
	sealed := f.s.sealCeremony("register", &sid, data)
	if strings.Contains(sealed, `"c"`) || strings.Contains(sealed, "register") {
		t.Errorf("the ceremony is not sealed: %s", sealed)
	}
	if _, err := f.s.openCeremony(ctx, "login", sealed, nil); status(err) != 400 {
		t.Errorf("opened as another kind: %v", err)
	}
	c, err := f.s.openCeremony(ctx, "register", f.s.sealCeremony("register", &sid, data), &sid)
	if err != nil || c.Data.Challenge != "c" || !c.Data.Expires.IsZero() || !near(c.Expires, f.s.Clock.Now().Add(CeremonyLifetime).Unix()) {
		t.Errorf("opened %+v %v", c, err)
	}
	for _, bad := range []string{"", "AAAA", sealed[:len(sealed)-2]} {
		if _, err := f.s.openCeremony(ctx, "register", bad, &sid); status(err) != 400 {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func TestReadFinish(t *testing.T) {
	for body, ok := range map[string]bool{
		`{"ceremony":"c","credential":{"id":"x"},"name":"n"}`: true,
		`{"ceremony":"c","credential":"x"}`:                   true,
		`{"ceremony":"","credential":{}}`:                     false,
		`{"ceremony":"c"}`:                                    false,
		`{"credential":{}}`:                                   false,
		`not json`:                                            false,
		``:                                                    false,
	} {
		in, err := ReadFinish([]byte(body))
		if (err == nil) != ok || (err != nil && status(err) != 400) {
			t.Errorf("%s: %v", body, err)
		}
		if ok && in.Ceremony != "c" {
			t.Errorf("%s: %+v", body, in)
		}
	}
	if _, err := ParseLogin(Finish{Credential: json.RawMessage(`{"id":"x"}`)}); status(err) != 400 {
		t.Errorf("a malformed assertion: %v", err)
	}
}

// near reports whether two Unix times are within a second of each
// other: the clock may pass a second between a call and its check.
func near(a, b int64) bool { return a-b <= 1 && b-a <= 1 }
