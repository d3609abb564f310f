package admin

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/account"
	"github.com/caddy-miniapp/miniapp/internal/gate"
	"github.com/caddy-miniapp/miniapp/internal/passkey"
	"github.com/caddy-miniapp/miniapp/internal/records"
	"github.com/caddy-miniapp/miniapp/internal/session"
	"github.com/caddy-miniapp/miniapp/internal/testhash"
	"github.com/caddy-miniapp/miniapp/internal/totp"
	"github.com/caddy-miniapp/miniapp/store"
	"github.com/caddy-miniapp/miniapp/store/storage"
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

var (
	adaHash = testhash.Bcrypt("lovelace-1815")
	// realms numbers the tests' realms: the admin API's nodes are the
	// process's
	realms atomic.Int64
)

// testNode is a registered node with what a test looks at.
type testNode struct {
	*Node
	logs    *observer.ObservedLogs
	logouts *atomic.Int64
	clock   *session.Clock
}

// newRealm is a new realm name for a test.
func newRealm() string { return fmt.Sprintf("admin-test-%d", realms.Add(1)) }

// register registers a node of the realm, as a handler's Provision
// does, over the store kept in dir, with the accounts (name, hash
// pairs), and unregisters it when the test ends. every tells two nodes
// on one folder apart (the process shares a realm of one place and
// options).
func register(t *testing.T, realm, dir string, every time.Duration, accounts ...string) *testNode {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	clk := new(session.Clock)
	mod := storage.New(&certmagic.FileStorage{Path: dir})
	shared, err := store.Join(ctx, mod, store.Options{Realm: realm, Every: every, Remember: 12 * time.Hour, Now: clk.Now, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = shared.Release() })
	keys, err := session.NewKeyring([][]byte{[]byte(strings.Repeat("k", 32))}, realm)
	if err != nil {
		t.Fatal(err)
	}
	var configs []account.Config
	for i := 0; i+1 < len(accounts); i += 2 {
		configs = append(configs, account.Config{Username: accounts[i], Password: accounts[i+1]})
	}
	set, err := account.Load(configs, realm, caddy.NewReplacer())
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.InfoLevel)
	logger := zap.New(core)
	rec := &records.Store{Realm: shared, Keys: keys, Logger: logger, Accounts: set}
	logouts := new(atomic.Int64)
	n := &Node{Realm: realm, Accounts: set, Shared: shared, Place: mod.Place(), Records: rec,
		TOTP: &totp.Service{Records: rec, Clock: clk, Logger: logger}, Passkeys: &passkey.Service{Records: rec, Clock: clk, Logger: logger},
		Logger: logger, Logout: func() { logouts.Add(1) }}
	t.Cleanup(Register(n))
	return &testNode{Node: n, logs: logs, logouts: logouts, clock: clk}
}

// acct is the node's account of the name.
func (n *testNode) acct(t *testing.T, name string) *account.Account {
	t.Helper()
	a, ok := n.Accounts.Lookup(name)
	if !ok {
		t.Fatalf("no account %q", name)
	}
	return a
}

// login records a session of the user started ago, and returns it.
func (n *testNode) login(t *testing.T, user string, ago time.Duration) store.Entry {
	t.Helper()
	acct := n.acct(t, user)
	started := n.clock.Now().Add(-ago).Truncate(time.Second)
	e := store.Entry{ID: [16]byte(session.Random(16)), Account: store.AccountID(acct.ID), Counter: n.Shared.Counter(context.Background(), store.AccountID(acct.ID)),
		Started: started, Expires: started.Add(12 * time.Hour), Generation: n.Shared.Generation(), Factors: 1, Address: "192.0.2.7", Device: "Firefox on Linux"}
	n.Shared.Login(context.Background(), e)
	return e
}

// revoked reports whether the session entry is no longer valid.
func (n *testNode) revoked(e store.Entry) bool {
	return n.Shared.Revoked(e.Account, e.ID, e.Expires, e.Counter, e.Generation)
}

// do sends a request to the admin API's routes as Caddy's admin server
// routes it, and returns the answer and the handler's error.
func do(t *testing.T, method, target string) (*httptest.ResponseRecorder, error) {
	t.Helper()
	return doJSON(t, method, target, "")
}

// doJSON is do with a JSON body.
func doJSON(t *testing.T, method, target, body string) (*httptest.ResponseRecorder, error) {
	t.Helper()
	mux := http.NewServeMux()
	var err error
	for _, route := range (API{}).Routes() {
		mux.HandleFunc(route.Pattern, func(w http.ResponseWriter, r *http.Request) { err = route.Handler.ServeHTTP(w, r) })
	}
	w := httptest.NewRecorder()
	r := httptest.NewRequest(method, target, strings.NewReader(body))
	r.RemoteAddr = "127.0.0.1:5555"
	mux.ServeHTTP(w, r)
	return w, err
}

// apiStatus is the status of an admin API error, 0 for none.
func apiStatus(err error) int {
	if apiErr, ok := errors.AsType[caddy.APIError](err); ok {
		return apiErr.HTTPStatus
	}
	return 0
}

// decode decodes a JSON answer.
func decode[T any](t *testing.T, w *httptest.ResponseRecorder) T {
	t.Helper()
	var v T
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
		t.Fatalf("%s: %v", w.Body, err)
	}
	return v
}

func TestCaddyModule(t *testing.T) {
	info := API{}.CaddyModule()
	if info.ID != "admin.api.miniapp" || info.New() == nil {
		t.Errorf("module %+v", info)
	}
	if len(API{}.Routes()) != 10 {
		t.Errorf("%d routes", len(API{}.Routes()))
	}
}

// TestRegister: a node is the admin API's until unregistered; a realm
// without nodes is gone.
func TestRegister(t *testing.T) {
	realm, dir := newRealm(), t.TempDir()
	a := register(t, realm, dir, time.Hour, "ada", adaHash)
	unregisterB := Register(&Node{Realm: realm, Accounts: a.Accounts, Shared: a.Shared, Place: "elsewhere"})
	r := httptest.NewRequest("GET", "/?realm="+realm, nil)
	if nodes, err := nodesOf(r); err != nil || len(nodes) != 2 {
		t.Fatalf("two nodes: %d %v", len(nodes), err)
	}
	unregisterB()
	if nodes, err := nodesOf(r); err != nil || len(nodes) != 1 || nodes[0] != a.Node {
		t.Fatalf("after one left: %v %v", nodes, err)
	}
	unregisterB() // twice does no harm
	if nodes, _ := nodesOf(r); len(nodes) != 1 {
		t.Errorf("unregistering twice removed another node: %d", len(nodes))
	}
	other := Register(&Node{Realm: realm + "-other"})
	other()
	live.Lock()
	_, left := live.byRealm[realm+"-other"]
	live.Unlock()
	if left {
		t.Error("a realm without nodes is kept")
	}
	if _, err := do(t, "GET", "/miniapp/sessions?user=ada&realm="+realm+"-other"); apiStatus(err) != http.StatusNotFound {
		t.Errorf("an unregistered realm: %v", err)
	}
}

// TestBadRequests: what the admin API refuses, with its status, never
// repeating the input.
func TestBadRequests(t *testing.T) {
	realm := newRealm()
	n := register(t, realm, t.TempDir(), time.Hour, "ada", adaHash)
	n.login(t, "ada", 0)
	q := "&realm=" + realm
	for _, tc := range []struct {
		method, target string
		status         int
		allow          string
		never          string
	}{
		{"POST", "/miniapp/sessions?user=ada" + q, 405, "GET", ""},
		{"GET", "/miniapp/sessions?realm=" + realm, 400, "", ""},
		{"GET", "/miniapp/sessions?user=a%0Aevil-name" + q, 400, "", "evil-name"},
		{"GET", "/miniapp/sessions?user=" + strings.Repeat("x", account.MaxNameLen+1) + q, 400, "", "xxxxxxxx"},
		{"GET", "/miniapp/sessions?user=mallory-the-name" + q, 404, "", "mallory-the-name"},
		{"GET", "/miniapp/sessions?user=ada&realm=bad%2Frealm-name", 400, "", "realm-name"},
		{"GET", "/miniapp/sessions?user=ada&realm=no-such-realm-here", 404, "", "no-such-realm-here"},
		{"GET", "/miniapp/sessions/00112233445566778899aabbccddeeff?realm=" + realm, 405, "DELETE", ""},
		{"DELETE", "/miniapp/sessions/not-a-session-id-xyz?realm=" + realm, 400, "", "not-a-session-id-xyz"},
		{"DELETE", "/miniapp/sessions/00112233445566778899aabbccddeeff?realm=" + realm, 404, "", "00112233445566778899aabbccddeeff"},
		{"GET", "/miniapp/signout?user=ada" + q, 405, "POST", ""},
		{"POST", "/miniapp/signout?user=nobody-of-that-name" + q, 404, "", "nobody-of-that-name"},
		{"POST", "/miniapp/totp?user=ada" + q, 405, "GET, DELETE", ""},
		{"DELETE", "/miniapp/totp?user=nobody-of-that-name" + q, 404, "", "nobody-of-that-name"},
		{"PUT", "/miniapp/passkeys?user=ada" + q, 405, "GET, DELETE", ""},
		{"GET", "/miniapp/passkeys?user=nobody-of-that-name" + q, 404, "", "nobody-of-that-name"},
		{"GET", "/miniapp/passkeys/AQID?realm=" + realm, 405, "DELETE", ""},
		{"DELETE", "/miniapp/passkeys/not+base64url!?realm=" + realm, 400, "", "base64url!"},
		{"DELETE", "/miniapp/passkeys/?realm=" + realm, 400, "", ""},
		{"DELETE", "/miniapp/passkeys/AQIDBAUG?realm=" + realm, 404, "", "AQIDBAUG"},
	} {
		w, err := do(t, tc.method, tc.target)
		if apiStatus(err) != tc.status {
			t.Errorf("%s %s: %v (%d), want %d", tc.method, tc.target, err, apiStatus(err), tc.status)
			continue
		}
		if got := w.Header().Get("Allow"); got != tc.allow {
			t.Errorf("%s %s: Allow %q, want %q", tc.method, tc.target, got, tc.allow)
		}
		if tc.never != "" && strings.Contains(err.Error(), tc.never) {
			t.Errorf("%s %s: the error repeats the input: %v", tc.method, tc.target, err)
		}
		if w.Body.Len() != 0 {
			t.Errorf("%s %s: an error with a body of its own: %s", tc.method, tc.target, w.Body)
		}
	}
	if n.logouts.Load() != 0 || n.revoked(n.login(t, "ada", 0)) {
		t.Error("a refused request ended something")
	}
}

// TestSessions lists a user's sessions, newest first, in the default
// realm when none is named, across the sites of a realm that each have
// a user of the name, and once for nodes of one store.
func TestSessions(t *testing.T) {
	dir := t.TempDir()
	a := register(t, DefaultRealm, dir, time.Hour, "ada", adaHash, "grace", testhash.Bcrypt("hopper-1906"))
	// a second node of the same site and store, with its own copy in
	// memory (a reload's old and new config)
	register(t, DefaultRealm, dir, 2*time.Hour, "ada", adaHash)
	older, newer := a.login(t, "ada", time.Hour), a.login(t, "ada", time.Minute)
	a.login(t, "grace", 0)
	w, err := do(t, "GET", "/miniapp/sessions?user=ada")
	if err != nil {
		t.Fatal(err)
	}
	views := decode[[]gate.View](t, w)
	if len(views) != 2 || views[0].ID != hex.EncodeToString(newer.ID[:]) || views[1].ID != hex.EncodeToString(older.ID[:]) ||
		views[0].Address != "192.0.2.7" || views[0].Device != "Firefox on Linux" || views[0].Account == "" || views[0].Account != views[1].Account {
		t.Errorf("sessions %s", w.Body)
	}
	// another site of the realm, with its own store and its own ada
	b := register(t, DefaultRealm, t.TempDir(), time.Hour, "ada", testhash.Bcrypt("another password"))
	elsewhere := b.login(t, "ada", 30*time.Minute)
	w, err = do(t, "GET", "/miniapp/sessions?user=ada&realm="+DefaultRealm)
	if err != nil {
		t.Fatal(err)
	}
	views = decode[[]gate.View](t, w)
	if len(views) != 3 || views[1].ID != hex.EncodeToString(elsewhere.ID[:]) || views[1].Account == views[0].Account {
		t.Errorf("sessions of two sites %s", w.Body)
	}
	if w, err := do(t, "GET", "/miniapp/sessions?user=grace"); err != nil || len(decode[[]gate.View](t, w)) != 1 {
		t.Errorf("grace: %v", err)
	}
}

// TestEndSession ends one session by its ID, whoever's it is, as a
// logout would: counted and logged.
func TestEndSession(t *testing.T) {
	realm := newRealm()
	n := register(t, realm, t.TempDir(), time.Hour, "ada", adaHash)
	e, other := n.login(t, "ada", time.Minute), n.login(t, "ada", 0)
	id := hex.EncodeToString(e.ID[:])
	w, err := do(t, "DELETE", "/miniapp/sessions/"+strings.ToUpper(id)+"?realm="+realm)
	if err != nil {
		t.Fatal(err)
	}
	if v := decode[gate.View](t, w); v.ID != id || v.Address != e.Address {
		t.Errorf("ended %s", w.Body)
	}
	if !n.revoked(e) || n.revoked(other) || n.logouts.Load() != 1 {
		t.Errorf("revoked %v, the other %v, logouts %d", n.revoked(e), n.revoked(other), n.logouts.Load())
	}
	logged := n.logs.FilterMessage("session ended").All()
	if len(logged) != 1 || logged[0].ContextMap()["user"] != "ada" || logged[0].ContextMap()["session"] != id || logged[0].ContextMap()["by"] != "admin API" {
		t.Errorf("logged %v", n.logs.All())
	}
	// an ended session leaves the index: it is listed no more, and
	// ending it again finds none
	if _, err := do(t, "DELETE", "/miniapp/sessions/"+id+"?realm="+realm); apiStatus(err) != http.StatusNotFound {
		t.Errorf("ending it again: %v", err)
	}
	w, err = do(t, "GET", "/miniapp/sessions?user=ada&realm="+realm)
	if views := decode[[]gate.View](t, w); err != nil || len(views) != 1 || views[0].ID != hex.EncodeToString(other.ID[:]) {
		t.Errorf("listed after the end: %v %s", err, w.Body)
	}
	if n.logouts.Load() != 1 {
		t.Errorf("logouts %d", n.logouts.Load())
	}
}

// TestSignOut ends every session of the user, and says how many were
// live, on every site of the realm that has the user.
func TestSignOut(t *testing.T) {
	realm := newRealm()
	a := register(t, realm, t.TempDir(), time.Hour, "ada", adaHash, "grace", testhash.Bcrypt("hopper-1906"))
	b := register(t, realm, t.TempDir(), time.Hour, "ada", testhash.Bcrypt("another password"))
	sessions := []store.Entry{a.login(t, "ada", 0), a.login(t, "ada", time.Minute), b.login(t, "ada", 0)}
	grace := a.login(t, "grace", 0)
	w, err := do(t, "POST", "/miniapp/signout?user=ada&realm="+realm)
	if err != nil {
		t.Fatal(err)
	}
	if got := decode[SignOut](t, w); got != (SignOut{User: "ada", Ended: 3, Accounts: 2}) {
		t.Errorf("answer %+v", got)
	}
	for i, e := range sessions {
		node := a
		if i == 2 {
			node = b
		}
		if !node.revoked(e) {
			t.Errorf("session %d lives", i)
		}
	}
	if a.revoked(grace) || a.logouts.Load() != 1 || b.logouts.Load() != 1 {
		t.Errorf("grace's session revoked %v; logouts %d %d", a.revoked(grace), a.logouts.Load(), b.logouts.Load())
	}
	if a.logs.FilterMessage("signed out everywhere").Len() != 1 {
		t.Errorf("logged %v", a.logs.All())
	}
	if w, err := do(t, "GET", "/miniapp/sessions?user=ada&realm="+realm); err != nil || len(decode[[]gate.View](t, w)) != 0 {
		t.Errorf("listed after the sign-out: %v %s", err, w.Body)
	}
	// a session begun since is not ended
	if after := a.login(t, "ada", 0); a.revoked(after) {
		t.Error("a session begun after the sign-out is refused")
	}
}
