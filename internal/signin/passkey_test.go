package signin

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/passkey"
	"github.com/caddy-miniapp/miniapp/internal/records"
	"github.com/caddy-miniapp/miniapp/internal/session"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/go-webauthn/webauthn/protocol/webauthncbor"
	"github.com/go-webauthn/webauthn/protocol/webauthncose"
	"github.com/go-webauthn/webauthn/webauthn"
)

var b64url = base64.RawURLEncoding

// authenticator is a software passkey of an account, stored in its
// record as a registration would have: one ECDSA P-256 key and a
// signature counter.
type authenticator struct {
	key     *ecdsa.PrivateKey
	id      []byte
	handle  []byte
	counter uint32
	verify  bool
}

// newPasskey makes a passkey of the user and stores it, registered as
// verifying its user or not.
func (w *world) newPasskey(t *testing.T, user string, verified bool) *authenticator {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	acct := w.acct(t, user)
	a := &authenticator{key: key, id: session.Random(32), handle: passkey.UserHandle(acct), verify: verified}
	pub, err := webauthncbor.Marshal(webauthncose.EC2PublicKeyData{
		PublicKeyData: webauthncose.PublicKeyData{KeyType: 2, Algorithm: -7}, Curve: 1,
		XCoord: key.X.FillBytes(make([]byte, 32)), YCoord: key.Y.FillBytes(make([]byte, 32)),
	})
	if err != nil {
		t.Fatal(err)
	}
	k := passkey.Key{ID: a.id, PublicKey: pub, AttestationType: "none", UserVerified: verified, Account: acct.ID.Tag(), Name: "laptop"}
	if err := w.s.Passkeys.Swap(context.Background(), user, func(keys []passkey.Key) ([]passkey.Key, error) { return append(keys, k), nil }); err != nil {
		t.Fatal(err)
	}
	return a
}

// rp is the relying party of the world's host.
func (w *world) rp(t *testing.T) *webauthn.WebAuthn {
	t.Helper()
	rp, err := w.s.Passkeys.RelyingParty(passkey.Site{Host: w.wire.Host, Secure: true})
	if err != nil {
		t.Fatal(err)
	}
	return rp
}

// assert begins a login and answers it as navigator.credentials.get
// would on the world's site.
func (w *world) assert(t *testing.T, rp *webauthn.WebAuthn, a *authenticator) passkey.Finish {
	t.Helper()
	begun, err := w.s.Passkeys.BeginLogin(rp)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(begun)
	var opts struct {
		PublicKey struct {
			Challenge string `json:"challenge"`
		} `json:"publicKey"`
		Ceremony string `json:"ceremony"`
	}
	if err := json.Unmarshal(raw, &opts); err != nil || opts.Ceremony == "" {
		t.Fatalf("login options %s: %v", raw, err)
	}
	rpHash := sha256.Sum256([]byte(rp.Config.RPID))
	flags := byte(0x01)
	if a.verify {
		flags |= 0x04
	}
	data := binary.BigEndian.AppendUint32(append(rpHash[:], flags), a.counter)
	cd, _ := json.Marshal(map[string]any{"type": "webauthn.get", "challenge": opts.PublicKey.Challenge, "origin": rp.Config.RPOrigins[0]})
	cdHash := sha256.Sum256(cd)
	digest := sha256.Sum256(append(append([]byte(nil), data...), cdHash[:]...))
	sig, err := ecdsa.SignASN1(rand.Reader, a.key, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	cred, _ := json.Marshal(map[string]any{"id": b64url.EncodeToString(a.id), "rawId": b64url.EncodeToString(a.id), "type": "public-key",
		"response": map[string]any{"clientDataJSON": b64url.EncodeToString(cd), "authenticatorData": b64url.EncodeToString(data),
			"signature": b64url.EncodeToString(sig), "userHandle": b64url.EncodeToString(a.handle)},
		"clientExtensionResults": map[string]any{}})
	return passkey.Finish{Ceremony: opts.Ceremony, Credential: cred}
}

// TestPasskey: a passkey signs in with two factors when it verified its
// user; without, one factor, or the code step for an account with
// one-time codes. Its use is recorded with the session it started.
func TestPasskey(t *testing.T) {
	for _, tc := range []struct {
		name       string
		verified   bool
		codes      bool
		factors    uint8
		codeNeeded bool
	}{
		{"verified", true, false, 2, false},
		{"verified, with codes", true, true, 2, false},
		{"not verified", false, false, 1, false},
		{"not verified, with codes", false, true, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			ctx := context.Background()
			if tc.codes {
				w.enrol(t, "ada")
			}
			a := w.newPasskey(t, "ada", tc.verified)
			a.counter = 3
			rp := w.rp(t)
			h := http.Header{}
			out := w.s.Passkey(ctx, h, rp, w.assert(t, rp, a), w.client("192.0.2.1"))
			if out.Err != nil || out.CodeNeeded != tc.codeNeeded || (out.Session == nil) != tc.codeNeeded {
				t.Fatalf("outcome %+v", out)
			}
			keys, _, _ := w.s.Passkeys.Of("ada")
			if len(keys) != 1 || !near(keys[0].LastUsed, w.clk.Now().Unix()) || keys[0].SignCount != 3 {
				t.Errorf("the passkey's use: %+v", keys)
			}
			names := cookieNames(t, h)
			if tc.codeNeeded {
				if len(names) != 1 || names[0] != "__Host-miniapp_session_pending" || len(keys[0].Sessions) != 0 {
					t.Errorf("the code step: cookies %v, sessions %v", names, keys[0].Sessions)
				}
				return
			}
			if out.Session.Factors != tc.factors || out.Session.User != "ada" {
				t.Errorf("session %+v", out.Session)
			}
			if len(keys[0].Sessions) != 1 || keys[0].Sessions[0].ID != out.Session.ID {
				t.Errorf("the passkey does not remember its session: %+v", keys[0].Sessions)
			}
			if w.count.of("login success") != 1 || (w.count.of("factor success passkey") == 1) != tc.verified {
				t.Errorf("counted %v", w.count.counts)
			}
			logged := w.logs.FilterMessage("login").All()
			if len(logged) != 1 || logged[0].ContextMap()["method"] != "passkey" || logged[0].ContextMap()["factors"] != tc.factors {
				t.Errorf("logged %v", w.logs.All())
			}
		})
	}
}

// TestPasskeyRefused: an assertion that proves no passkey is a 401,
// counted against the client, which is then throttled; a cloned key is
// logged as such; a malformed answer or a used ceremony is refused as
// it is, not as a failed login.
func TestPasskeyRefused(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	rp := w.rp(t)
	stranger := w.newPasskey(t, "ada", true)
	// a key of the account the record does not hold
	if err := w.s.Passkeys.Swap(ctx, "ada", func([]passkey.Key) ([]passkey.Key, error) { return nil, nil }); err != nil {
		t.Fatal(err)
	}
	for i := range loginLimit {
		out := w.s.Passkey(ctx, http.Header{}, rp, w.assert(t, rp, stranger), w.client("192.0.2.1"))
		if r := refusal(out); r == nil || r.Status != http.StatusUnauthorized || r.Reason != passkey.ErrRefused.Error() || out.Session != nil {
			t.Fatalf("refusal %d: %+v", i+1, out)
		}
	}
	if w.count.of("login failure") != loginLimit || w.logs.FilterMessage("passkey sign-in refused").Len() != loginLimit {
		t.Errorf("counted %v", w.count.counts)
	}
	out := w.s.Passkey(ctx, http.Header{}, rp, w.assert(t, rp, stranger), w.client("192.0.2.1"))
	if r := refusal(out); r == nil || r.Status != http.StatusTooManyRequests || r.Wait <= 0 {
		t.Errorf("past the limit: %+v", out)
	}
	if w.count.of("login throttled") != 1 || w.logs.FilterMessage("passkey sign-in throttled").Len() != 1 {
		t.Errorf("counted %v", w.count.counts)
	}

	// a cloned key: its counter went back
	a := w.newPasskey(t, "ada", true)
	a.counter = 10
	if out := w.s.Passkey(ctx, http.Header{}, rp, w.assert(t, rp, a), w.client("192.0.2.2")); out.Session == nil {
		t.Fatalf("first use: %+v", out)
	}
	a.counter = 4
	out = w.s.Passkey(ctx, http.Header{}, rp, w.assert(t, rp, a), w.client("192.0.2.2"))
	if r := refusal(out); r == nil || r.Status != http.StatusUnauthorized {
		t.Errorf("a cloned key: %+v", out)
	}
	cloned := w.logs.FilterMessageSnippet("signature counter went backwards").All()
	if len(cloned) != 1 || cloned[0].ContextMap()["user"] != "ada" {
		t.Errorf("logged %v", w.logs.All())
	}

	// a malformed answer, a used ceremony: refused as they are
	failures := w.count.of("login failure")
	in := w.assert(t, rp, a)
	bad := in
	bad.Credential = json.RawMessage(`{"id":"x"}`)
	out = w.s.Passkey(ctx, http.Header{}, rp, bad, w.client("192.0.2.3"))
	if herr, ok := errors.AsType[caddyhttp.HandlerError](out.Err); !ok || herr.StatusCode != http.StatusBadRequest {
		t.Errorf("a malformed answer: %+v", out)
	}
	a.counter = 20
	in = w.assert(t, rp, a)
	if out := w.s.Passkey(ctx, http.Header{}, rp, in, w.client("192.0.2.3")); out.Session == nil {
		t.Fatalf("a good answer: %+v", out)
	}
	out = w.s.Passkey(ctx, http.Header{}, rp, in, w.client("192.0.2.3"))
	if herr, ok := errors.AsType[caddyhttp.HandlerError](out.Err); !ok || herr.StatusCode != http.StatusBadRequest || out.Session != nil {
		t.Errorf("a ceremony used twice: %+v", out)
	}
	if w.count.of("login failure") != failures {
		t.Errorf("a malformed answer or a used ceremony counted as a failed login: %v", w.count.counts)
	}
}

// TestPasskeyFailed maps a passkey's errors: a record that does not
// open is 403, a store that did not answer 503 with a wait, an unknown
// passkey 404, anything else as it is.
func TestPasskeyFailed(t *testing.T) {
	other := errors.New("something else")
	for _, tc := range []struct {
		err    error
		status int
		wait   bool
		log    string
	}{
		{records.ErrUnreadable, http.StatusForbidden, false, "does not open"},
		{fmt.Errorf("opening: %w", records.ErrUnreadable), http.StatusForbidden, false, "does not open"},
		{records.StoreFailed{Err: errors.New("i/o timeout")}, http.StatusServiceUnavailable, true, "changing or checking a passkey"},
		{passkey.ErrNoKey, http.StatusNotFound, false, ""},
	} {
		w := newWorld(t)
		err := w.s.PasskeyFailed("ada", tc.err)
		r, ok := errors.AsType[*Refusal](err)
		if !ok || r.Status != tc.status || (r.Wait > 0) != tc.wait {
			t.Errorf("%v: %v", tc.err, err)
			continue
		}
		if tc.log == "" {
			if w.logs.Len() != 0 {
				t.Errorf("%v: logged %v", tc.err, w.logs.All())
			}
		} else if e := w.logs.FilterMessageSnippet(tc.log).All(); len(e) != 1 || e[0].ContextMap()["user"] != "ada" {
			t.Errorf("%v: logged %v", tc.err, w.logs.All())
		}
		if w.count.of("factor failure store") != 0 || w.count.of("factor failure unreadable") != 0 {
			t.Errorf("%v: counted as a second factor's failure: %v", tc.err, w.count.counts)
		}
	}
	w := newWorld(t)
	if err := w.s.PasskeyFailed("ada", other); err != other {
		t.Errorf("another error: %v", err)
	}
	if w.s.PasskeyFailed("ada", records.StoreFailed{Err: errors.New("x")}).(*Refusal).Wait != 5*time.Second {
		t.Error("the store's wait")
	}
}

// near reports whether two Unix times are within a second of each
// other: the clock may pass a second between a call and its check.
func near(a, b int64) bool { return a-b <= 1 && b-a <= 1 }
