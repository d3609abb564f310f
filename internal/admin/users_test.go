package admin

import (
	"context"
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
