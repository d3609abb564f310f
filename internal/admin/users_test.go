package admin

import (
	"context"
	"encoding/hex"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/passkey"
	"github.com/caddy-miniapp/miniapp/internal/testhash"
	"github.com/caddy-miniapp/miniapp/internal/totp"
	"github.com/caddy-miniapp/miniapp/internal/users"
)

// withUsers gives the node managed users, as the root wires them.
func withUsers(n *testNode) {
	n.Users = &users.Service{Realm: n.Realm, Records: n.Records, Config: n.Accounts, Hash: users.Argon2id, Clock: n.clock}
	n.Accounts.Manage(n.Users)
}

// TestRemoveUser: a managed user's records hang on its immutable ID:
// removing the user removes them, and a user made again under the name
// starts without the earlier one's trusted browsers and passkeys; the
// link carries the token in its fragment only.
func TestRemoveUser(t *testing.T) {
	realm := newRealm()
	n := register(t, realm, t.TempDir(), time.Hour, "ada", testhash.Bcrypt("lovelace-1815"))
	withUsers(n)
	ctx := context.Background()
	w, err := doJSON(t, http.MethodPost, "/miniapp/users?realm="+realm, `{"name": "mia", "groups": ["staff"]}`)
	if err != nil || w.Code != http.StatusCreated {
		t.Fatalf("create: %d %v", w.Code, err)
	}
	invite := decode[Invite](t, w)
	if invite.Name != "mia" || invite.Token == "" || invite.Link != "/login/invite#"+invite.Token {
		t.Errorf("the invite: %+v", invite)
	}
	mia := n.acct(t, "mia")
	if err := n.TOTP.Trust(ctx, "mia", totp.Trust{ID: "01", Expires: n.clock.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if err := n.Passkeys.Swap(ctx, "mia", func([]passkey.Key) ([]passkey.Key, error) {
		return []passkey.Key{{ID: []byte{5, 5, 5}, PublicKey: []byte{1}, Account: mia.ID.Tag(), Name: "key"}}, nil
	}); err != nil {
		t.Fatal(err)
	}
	keys := []string{mia.RecordKey(totp.TrustKind), mia.RecordKey(passkey.Kind)}
	for _, key := range keys {
		if n.Records.Get(key) == nil || !strings.Contains(key, "@"+mia.UID+":") {
			t.Errorf("no record %q of mia's ID", key)
		}
	}
	if w, err := do(t, http.MethodGet, "/miniapp/users?realm="+realm); err != nil || !strings.Contains(w.Body.String(), `"factors":["passkey"]`) {
		t.Errorf("the list: %s %v", w.Body, err)
	}
	if w, err := do(t, http.MethodDelete, "/miniapp/users/mia?realm="+realm); err != nil || w.Code != http.StatusOK {
		t.Fatalf("remove: %d %v", w.Code, err)
	}
	for _, key := range keys {
		if n.Records.Get(key) != nil {
			t.Errorf("record %q left after the user's removal", key)
		}
	}
	if _, err := doJSON(t, http.MethodPost, "/miniapp/users?realm="+realm, `{"name": "mia"}`); err != nil {
		t.Fatal(err)
	}
	if again := n.acct(t, "mia"); again.UID == mia.UID || n.TOTP.Has("mia") || n.Passkeys.Owner([]byte{5, 5, 5}) != "" {
		t.Error("mia made again is the removed account, or has its records")
	}
	if _, err := doJSON(t, http.MethodPost, "/miniapp/users?realm="+realm, `{"name": "ada"}`); apiStatus(err) != http.StatusConflict {
		t.Errorf("a name of the Caddyfile made in the store: %v", err)
	}
}

// TestUserBadSite: a site that is not an absolute URL is refused before
// anything changes: no account is made, no password reset.
func TestUserBadSite(t *testing.T) {
	realm := newRealm()
	n := register(t, realm, t.TempDir(), time.Hour, "ada", testhash.Bcrypt("lovelace-1815"))
	withUsers(n)
	if _, err := doJSON(t, http.MethodPost, "/miniapp/users?realm="+realm, `{"name": "zoe", "site": "auth.example.test"}`); apiStatus(err) != http.StatusBadRequest || n.Users.Exists("zoe") {
		t.Errorf("a bad site: %v, the account made %v", err, n.Users.Exists("zoe"))
	}
	w, err := doJSON(t, http.MethodPost, "/miniapp/users?realm="+realm, `{"name": "zoe", "site": "https://auth.example.test/x?y"}`)
	if err != nil || decode[Invite](t, w).Link != "https://auth.example.test/login/invite#"+decode[Invite](t, w).Token {
		t.Fatalf("a good site: %s %v", w.Body, err)
	}
	token := decode[Invite](t, w).Token
	if _, err := doJSON(t, http.MethodPost, "/miniapp/users/zoe/reset?realm="+realm, `{"site": "ftp://auth.example.test"}`); apiStatus(err) != http.StatusBadRequest {
		t.Errorf("a reset with a bad site: %v", err)
	}
	if _, err := n.Users.Redeem(context.Background(), token); err != nil {
		t.Errorf("the invite after a refused reset: %v", err)
	}
}

// TestUserAcrossSites: a name any site of the realm lists in its
// Caddyfile cannot be made in the store; a managed user whose name a
// reload gave to the Caddyfile is listed with its own factors and can
// only be removed, which leaves the Caddyfile user's sessions alone.
func TestUserAcrossSites(t *testing.T) {
	realm, dir := newRealm(), t.TempDir()
	a := register(t, realm, dir, time.Hour, "ada", testhash.Bcrypt("lovelace-1815"))
	withUsers(a)
	register(t, realm, dir, 2*time.Hour, "ben", testhash.Bcrypt("benjamin-1706"))
	if _, err := doJSON(t, http.MethodPost, "/miniapp/users?realm="+realm, `{"name": "BEN"}`); apiStatus(err) != http.StatusConflict {
		t.Errorf("another site's Caddyfile name: %v", err)
	}
	if _, err := doJSON(t, http.MethodPost, "/miniapp/users?realm="+realm, `{"name": "cat"}`); err != nil {
		t.Fatal(err)
	}
	cat := a.acct(t, "cat")
	if err := a.TOTP.Trust(context.Background(), "cat", totp.Trust{ID: "01", Expires: a.clock.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if err := a.Records.Swap(context.Background(), cat.RecordKey(passkey.Kind), func([]byte) ([]byte, error) { return []byte("sealed"), nil }); err != nil {
		t.Fatal(err)
	}
	a.Users = nil
	// a reload: this site's Caddyfile now has a cat of its own
	b := register(t, realm, dir, 3*time.Hour, "cat", testhash.Bcrypt("catherine-1729"))
	withUsers(b)
	configured := b.login(t, "cat", 0)
	if w, err := do(t, http.MethodGet, "/miniapp/users?realm="+realm); err != nil || !strings.Contains(w.Body.String(), `"name":"cat"`) ||
		!strings.Contains(w.Body.String(), `"factors":["passkey"]`) {
		t.Errorf("the list: %s %v", w.Body, err)
	}
	for _, method := range []string{http.MethodPatch, http.MethodPost} {
		path := "/miniapp/users/cat?realm=" + realm
		if method == http.MethodPost {
			path = "/miniapp/users/cat/reset?realm=" + realm
		}
		if _, err := doJSON(t, method, path, `{}`); apiStatus(err) != http.StatusConflict {
			t.Errorf("%s of a shadowed user: %v", method, err)
		}
	}
	if _, err := do(t, http.MethodDelete, "/miniapp/users/cat?realm="+realm); err != nil {
		t.Fatalf("removing a shadowed user: %v", err)
	}
	if b.Users.Exists("cat") || b.Records.Get(cat.RecordKey(passkey.Kind)) != nil || b.revoked(configured) {
		t.Errorf("after the removal: exists %v, passkeys left %v, the Caddyfile cat signed out %v", b.Users.Exists("cat"),
			b.Records.Get(cat.RecordKey(passkey.Kind)) != nil, b.revoked(configured))
	}
	if _, err := do(t, http.MethodDelete, "/miniapp/users/cat?realm="+realm); apiStatus(err) != http.StatusConflict {
		t.Errorf("removing the Caddyfile's cat: %v", err)
	}
}

// TestSignOutEndsTrusts: the operator's sign out everywhere ends the
// user's trusted browsers too; ending a managed user's session logs
// the user's name.
func TestSignOutEndsTrusts(t *testing.T) {
	realm := newRealm()
	n := register(t, realm, t.TempDir(), time.Hour, "ada", testhash.Bcrypt("lovelace-1815"))
	withUsers(n)
	ctx := context.Background()
	id := [16]byte{1}
	if err := n.TOTP.Trust(ctx, "ada", totp.Trust{ID: hex.EncodeToString(id[:]), Expires: n.clock.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if _, err := do(t, http.MethodPost, "/miniapp/signout?user=ada&realm="+realm); err != nil || n.TOTP.Trusted("ada", id) {
		t.Errorf("signed out: %v, still trusted %v", err, n.TOTP.Trusted("ada", id))
	}
	// as does the operator's reset of the second factor, or of a
	// managed user's password
	for _, c := range []struct{ user, method, path string }{
		{"ada", http.MethodDelete, "/miniapp/totp?user=ada&realm="},
		{"mia", http.MethodPost, "/miniapp/users/mia/reset?realm="},
	} {
		if c.user == "mia" {
			if _, err := doJSON(t, http.MethodPost, "/miniapp/users?realm="+realm, `{"name": "mia"}`); err != nil {
				t.Fatal(err)
			}
		}
		if err := n.TOTP.Trust(ctx, c.user, totp.Trust{ID: hex.EncodeToString(id[:]), Expires: n.clock.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		if _, err := do(t, c.method, c.path+realm); err != nil || n.TOTP.Trusted(c.user, id) {
			t.Errorf("%s %s: %v, still trusted %v", c.method, c.path, err, n.TOTP.Trusted(c.user, id))
		}
	}
	e := n.login(t, "mia", 0)
	if _, err := do(t, http.MethodDelete, "/miniapp/sessions/"+hex.EncodeToString(e.ID[:])+"?realm="+realm); err != nil {
		t.Fatal(err)
	}
	if logged := n.logs.FilterMessage("session ended").All(); len(logged) != 1 || logged[0].ContextMap()["user"] != "mia" {
		t.Errorf("logged %v", logged)
	}
}
