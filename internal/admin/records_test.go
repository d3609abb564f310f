package admin

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	rfc6238 "github.com/pquerna/otp/totp"

	"github.com/caddy-miniapp/miniapp/internal/passkey"
	"github.com/caddy-miniapp/miniapp/internal/testhash"
	"github.com/caddy-miniapp/miniapp/internal/totp"
)

// TestTOTP shows a user's second factor, and removes it with every
// session of the user.
func TestTOTP(t *testing.T) {
	realm := newRealm()
	n := register(t, realm, t.TempDir(), time.Hour, "ada", adaHash)
	ctx := context.Background()
	q := "?user=ada&realm=" + realm
	if w, err := do(t, "GET", "/miniapp/totp"+q); err != nil || decode[TOTP](t, w) != (TOTP{}) {
		t.Fatalf("no factor: %v %s", err, w.Body)
	}
	const secret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
	code, _ := rfc6238.GenerateCode(secret, n.clock.Now())
	codes, _, err := n.TOTP.Enrol(ctx, "ada", secret, code)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.TOTP.Use(ctx, "ada", codes[0]); err != nil {
		t.Fatal(err)
	}
	if w, err := do(t, "GET", "/miniapp/totp"+q); err != nil || decode[TOTP](t, w) != (TOTP{Enrolled: true, RecoveryCodesLeft: totp.RecoveryCodes - 1}) {
		t.Fatalf("a factor: %v %s", err, w.Body)
	}
	e := n.login(t, "ada", 0)
	w, err := do(t, "DELETE", "/miniapp/totp"+q)
	if err != nil {
		t.Fatal(err)
	}
	if got := decode[RecordReset](t, w); got != (RecordReset{User: "ada", Removed: true, Ended: 1}) {
		t.Errorf("reset %+v", got)
	}
	if n.TOTP.Has("ada") || !n.revoked(e) {
		t.Errorf("factor left %v, session revoked %v", n.TOTP.Has("ada"), n.revoked(e))
	}
	if logged := n.logs.FilterMessage("second factor removed").All(); len(logged) != 1 || logged[0].ContextMap()["had_factor"] != true {
		t.Errorf("logged %v", n.logs.All())
	}
	w, err = do(t, "DELETE", "/miniapp/totp"+q)
	if err != nil || decode[RecordReset](t, w) != (RecordReset{User: "ada"}) {
		t.Errorf("none to remove: %v %s", err, w.Body)
	}
}

// TestPasskeys lists a user's passkeys, refuses to list a record that
// does not open, and removes it whether it opens or not, with every
// session of the user.
func TestPasskeys(t *testing.T) {
	realm := newRealm()
	n := register(t, realm, t.TempDir(), time.Hour, "ada", adaHash)
	ctx := context.Background()
	q := "?user=ada&realm=" + realm
	if w, err := do(t, "GET", "/miniapp/passkeys"+q); err != nil || strings.TrimSpace(w.Body.String()) != "[]" {
		t.Fatalf("none: %v %s", err, w.Body)
	}
	k := passkey.Key{ID: []byte{1, 2, 3}, PublicKey: []byte{1}, Account: n.acct(t, "ada").ID.Tag(), Name: "<b>laptop</b>", Created: 1_700_000_000}
	if err := n.Passkeys.Swap(ctx, "ada", func([]passkey.Key) ([]passkey.Key, error) { return []passkey.Key{k}, nil }); err != nil {
		t.Fatal(err)
	}
	w, err := do(t, "GET", "/miniapp/passkeys"+q)
	if err != nil {
		t.Fatal(err)
	}
	if views := decode[[]passkey.View](t, w); len(views) != 1 || views[0].ID != "AQID" || views[0].Name != k.Name || views[0].LastUsed != nil {
		t.Errorf("passkeys %s", w.Body)
	}
	if err := n.Records.Swap(ctx, "passkeys:ada", func([]byte) ([]byte, error) { return []byte("edited"), nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := do(t, "GET", "/miniapp/passkeys"+q); apiStatus(err) != http.StatusConflict {
		t.Errorf("a record that does not open: %v", err)
	}
	e := n.login(t, "ada", 0)
	w, err = do(t, "DELETE", "/miniapp/passkeys"+q)
	if err != nil {
		t.Fatal(err)
	}
	if got := decode[RecordReset](t, w); got != (RecordReset{User: "ada", Removed: true, Ended: 1}) {
		t.Errorf("reset %+v", got)
	}
	if n.Records.Get("passkeys:ada") != nil || !n.revoked(e) {
		t.Error("the record or the session is left")
	}
	if logged := n.logs.FilterMessage("passkeys removed").All(); len(logged) != 1 || logged[0].ContextMap()["had_passkeys"] != true {
		t.Errorf("logged %v", n.logs.All())
	}
}

// TestDeletePasskey removes one passkey by its ID, whoever's it is,
// and ends the sessions it started, no other.
func TestDeletePasskey(t *testing.T) {
	realm := newRealm()
	n := register(t, realm, t.TempDir(), time.Hour, "ada", adaHash, "grace", testhash.Bcrypt("hopper-1906"))
	ctx := context.Background()
	started, other := n.login(t, "grace", 0), n.login(t, "grace", time.Minute)
	k := passkey.Key{ID: []byte{0xfb, 0xff, 0x01}, PublicKey: []byte{1}, Account: n.acct(t, "grace").ID.Tag(), Name: "phone", Created: 1_700_000_000,
		Sessions: []passkey.Session{{ID: started.ID, Expires: started.Expires.Unix()}}}
	keep := passkey.Key{ID: []byte{9}, PublicKey: []byte{1}, Account: n.acct(t, "grace").ID.Tag(), Name: "laptop"}
	if err := n.Passkeys.Swap(ctx, "grace", func([]passkey.Key) ([]passkey.Key, error) { return []passkey.Key{k, keep}, nil }); err != nil {
		t.Fatal(err)
	}
	w, err := do(t, "DELETE", "/miniapp/passkeys/-_8B?realm="+url.QueryEscape(realm))
	if err != nil {
		t.Fatal(err)
	}
	got := decode[PasskeyDeleted](t, w)
	if got.User != "grace" || got.Passkey.ID != "-_8B" || got.Passkey.Name != "phone" {
		t.Errorf("deleted %s", w.Body)
	}
	if !n.revoked(started) || n.revoked(other) {
		t.Errorf("the passkey's session revoked %v, another %v", n.revoked(started), n.revoked(other))
	}
	if keys, _, _ := n.Passkeys.Of("grace"); len(keys) != 1 || keys[0].Name != "laptop" {
		t.Errorf("left %+v", keys)
	}
	if logged := n.logs.FilterMessage("passkey removed").All(); len(logged) != 1 || logged[0].ContextMap()["user"] != "grace" ||
		logged[0].ContextMap()["sessions"] != int64(1) {
		t.Errorf("logged %v", n.logs.All())
	}
	if _, err := do(t, "DELETE", "/miniapp/passkeys/-_8B?realm="+realm); apiStatus(err) != http.StatusNotFound {
		t.Errorf("deleted twice: %v", err)
	}
}
