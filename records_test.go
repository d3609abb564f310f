package miniapp

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/passkey"
	"github.com/caddy-miniapp/miniapp/internal/records"
	"github.com/caddy-miniapp/miniapp/internal/totp"

	"github.com/caddy-miniapp/miniapp/internal/session"
	"github.com/caddy-miniapp/miniapp/store"
	"github.com/caddyserver/caddy/v2"
)

// TestRecordsEditedRefused: a passkeys or second factor record edited in
// the store is refused: the passkey signs nobody in, and the codes of
// the user are refused (403) rather than the factor switched off.
func TestRecordsEditedRefused(t *testing.T) {
	dir := t.TempDir()
	a := newApp(t, dir, nil)
	auth := newAuthenticator(t, passkeyHost)
	if w := a.register(auth, a.httpsLogin("ada", adaPassword), ""); w.Code != 201 {
		t.Fatalf("registration: %d", w.Code)
	}
	e := a.enrol("grace", gracePassword)
	for _, key := range []string{"passkeys:ada", "totp:grace"} {
		file := filepath.Join(dir, "miniapp", "miniapp", "records", hex.EncodeToString([]byte(key)))
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		data[len(data)/2] ^= 1
		if err := os.WriteFile(file, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	b := newApp(t, dir, func(h *Handler) { h.RevocationSync = caddy.Duration(1100 * time.Millisecond) })
	b.h.clock = a.h.clock
	if w := b.passkeyLogin(auth); w.Code != 401 {
		t.Errorf("a passkey of an edited record: %d", w.Code)
	}
	a.advance(30 * time.Second)
	w := b.post("/login", "username=grace&password="+gracePassword+"&code="+a.codeFor(e.secret), nil)
	if w.Code != 403 || !strings.Contains(w.Body.String(), "ask an operator") {
		t.Errorf("a code of an edited record: %d %q", w.Code, w.Body)
	}
	if w := b.post("/login", "username=grace&password="+gracePassword, nil); w.Code != 401 || cookieNamed(w, "miniapp_session") != nil {
		t.Errorf("a password alone with an edited record: %d", w.Code)
	}
}

// TestRecordsKeyRotation: a node that starts with a new first key seals
// the records again with it (second factors and passkeys), so the old
// key can go.
func TestRecordsKeyRotation(t *testing.T) {
	dir := t.TempDir()
	a := newApp(t, dir, nil)
	e := a.enrol("ada", adaPassword)
	auth := newAuthenticator(t, passkeyHost)
	if w := a.register(auth, a.httpsLogin("grace", gracePassword), ""); w.Code != 201 {
		t.Fatalf("registration: %d", w.Code)
	}
	newKey := session.NewSecret()
	rotated := newApp(t, dir, func(h *Handler) {
		h.SecretKeys = []string{newKey, testKey}
		h.RevocationSync = caddy.Duration(1100 * time.Millisecond)
	})
	if sealed := rotated.logs.FilterMessageSnippet("sealed again"); sealed.Len() != 1 || sealed.All()[0].ContextMap()["records"] != int64(2) {
		t.Fatalf("the records were not sealed again with the new key: %v", sealed.All())
	}
	onlyNew := newApp(t, dir, func(h *Handler) {
		h.SecretKeys = []string{newKey}
		h.RevocationSync = caddy.Duration(1200 * time.Millisecond)
	})
	onlyNew.h.clock = a.h.clock
	a.advance(30 * time.Second)
	if w := onlyNew.post("/login", "username=ada&password="+adaPassword+"&code="+a.codeFor(e.secret), nil); w.Code != 200 {
		t.Errorf("a code after the old key went: %d %q", w.Code, w.Body)
	}
	if w := onlyNew.passkeyLogin(auth); w.Code != 200 {
		t.Errorf("a passkey after the old key went: %d %q", w.Code, w.Body)
	}
}

// TestLongUserRecords: a user whose name makes a record key too long for
// a hex file name (150 bytes) sets up one-time codes and a passkey on
// file storage, and a node that starts later sees both.
func TestLongUserRecords(t *testing.T) {
	long := strings.Repeat("u", 150)
	dir := t.TempDir()
	accounts := func(h *Handler) { h.Accounts = append(testAccounts(), Account{Username: long, Password: adaHash}) }
	a := newApp(t, dir, accounts)
	e := a.enrol(long, adaPassword)
	auth := newAuthenticator(t, passkeyHost)
	if w := a.register(auth, a.stepUpSession(long, 2, 0), ""); w.Code != 201 {
		t.Fatalf("a passkey for the long name: %d %q", w.Code, w.Body)
	}
	if w := a.do(request{target: "/hello"}); w.Code != 200 {
		t.Errorf("after the records: %d", w.Code)
	}
	b := newApp(t, dir, accounts)
	if _, p := b.profileOf(e.session); p.SecondFactor != (totp.Status{TOTP: true, RecoveryCodesLeft: 10}) {
		t.Errorf("another node's view of the long name's factor: %+v", p.SecondFactor)
	}
	if keys, _, err := b.h.app.Passkeys.Of(long); len(keys) != 1 || err != nil {
		t.Errorf("another node's view of the long name's passkeys: %d %v", len(keys), err)
	}
}

// TestPasskeysRecordBounded: a passkeys record at the edge of the
// store's limit (long credential IDs, many sessions remembered) takes
// one more sign-in: the oldest sessions are forgotten (and logged), the
// newest is remembered, the counter and last use are stored, and the
// record stays within the limit.
func TestPasskeysRecordBounded(t *testing.T) {
	a := newApp(t, "", nil)
	auth := newAuthenticator(t, passkeyHost)
	auth.counter = 1
	if w := a.register(auth, a.stepUpSession("ada", 2, 0), ""); w.Code != 201 {
		t.Fatalf("registration: %d %q", w.Code, w.Body)
	}
	err := a.h.app.Passkeys.Swap(context.Background(), "ada", func(keys []passkey.Key) ([]passkey.Key, error) {
		for len(keys) < passkey.MaxKeys {
			keys = append(keys, passkey.Key{ID: session.Random(1023), PublicKey: session.Random(77), Account: keys[0].Account, Name: "old key"})
		}
		// sessions until one more would not fit, then a longer name of an
		// old key that leaves less room than any session takes (a session
		// ID's JSON is 16 numbers of 1 to 3 digits)
		for n := 0; ; n++ {
			k := &keys[n%len(keys)]
			k.Sessions = append(k.Sessions, passkey.Session{ID: [16]byte(session.Random(16)), Expires: a.h.clock.Now().Add(time.Hour).Unix() + int64(n)})
			if b, _ := json.Marshal(keys); len(b) > records.MaxData-40 {
				k.Sessions = k.Sessions[:len(k.Sessions)-1]
				b, _ = json.Marshal(keys)
				keys[1].Name += strings.Repeat("x", records.MaxData-len(b)-10)
				return keys, nil
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	before, _, _ := a.h.app.Passkeys.Of("ada")
	var remembered []passkey.Session
	for _, k := range before {
		remembered = append(remembered, k.Sessions...)
	}
	a.advance(time.Minute)
	cookie := sessionCookie(t, a.passkeyLogin(auth))
	started, err := a.h.app.Keys.Open(session.PurposeSession, cookie.Value, cookie.Name, passkeyHost)
	if err != nil {
		t.Fatal(err)
	}
	keys, sealed, err := a.h.app.Passkeys.Of("ada")
	if err != nil || len(sealed) > store.MaxRecord {
		t.Fatalf("the record after the sign-in: %d bytes, %v", len(sealed), err)
	}
	k := keys[passkey.Find(keys, auth.id)]
	if k.SignCount != 2 || k.LastUsed != a.h.clock.Now().Unix() || k.Sessions[len(k.Sessions)-1].ID != started.ID {
		t.Errorf("the sign-in was not recorded: counter %d, last used %d, newest session %x", k.SignCount, k.LastUsed, k.Sessions[len(k.Sessions)-1].ID)
	}
	if a.logs.FilterMessageSnippet("the oldest are ended").Len() != 1 || a.logs.FilterMessageSnippet("recording a passkey's use failed").Len() != 0 {
		t.Errorf("the log:\n%s", a.logText())
	}
	// the sessions no longer remembered are ended: deleting a passkey
	// still ends every session it started
	kept := map[[16]byte]bool{}
	for _, k := range keys {
		for _, s := range k.Sessions {
			kept[s.ID] = true
		}
	}
	for _, id := range remembered {
		if !kept[id.ID] && !a.h.app.Shared.RevokedID(id.ID, time.Unix(id.Expires, 0)) {
			t.Errorf("session %x is neither remembered nor ended", id.ID)
		}
	}
}
