package miniapp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/caddy-miniapp/miniapp/internal/admin"
	"github.com/caddy-miniapp/miniapp/internal/gate"
	"github.com/caddy-miniapp/miniapp/internal/passkey"
	"github.com/caddy-miniapp/miniapp/internal/routes"
	"github.com/caddy-miniapp/miniapp/internal/testhash"
	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
)

// TestAdminKnowsLiveHandlers: the admin API finds a provisioned handler
// by its realm, the default realm when none is asked for, and forgets
// it once it is cleaned up (a config unloaded).
func TestAdminKnowsLiveHandlers(t *testing.T) {
	a := newApp(t, "", func(h *Handler) { h.Realm = "admin-test" })
	a.loginWith("ada", firefoxUA)
	w := httptest.NewRecorder()
	var listed []gate.View
	err := serveAdmin(w, httptest.NewRequest("GET", "/miniapp/sessions?user=ada&realm=admin-test", nil))
	if err != nil || json.Unmarshal(w.Body.Bytes(), &listed) != nil || len(listed) != 1 {
		t.Fatalf("sessions in the realm of a live handler: %v %s", err, w.Body)
	}
	if err := serveAdmin(httptest.NewRecorder(), httptest.NewRequest("GET", "/miniapp/sessions?user=nobody&realm=admin-test", nil)); err == nil {
		t.Errorf("an unknown user found")
	}
	if err := a.h.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if err := serveAdmin(httptest.NewRecorder(), httptest.NewRequest("GET", "/miniapp/sessions?user=ada&realm=admin-test", nil)); err == nil {
		t.Errorf("a handler cleaned up is still found")
	}
}

// TestAdminFindsUsersOfEveryHandler: two handlers of one realm with
// different users (two site blocks, or the configs before and after a
// reload) each have their users found, and their sessions listed.
func TestAdminFindsUsersOfEveryHandler(t *testing.T) {
	storage := t.TempDir()
	one := newApp(t, storage, func(h *Handler) { h.Realm = "admin-two"; h.Accounts = testAccounts()[:1] })
	two := newApp(t, storage, func(h *Handler) { h.Realm = "admin-two"; h.Accounts = testAccounts()[1:] })
	one.loginWith(one.h.Accounts[0].Username, firefoxUA)
	two.loginWith(two.h.Accounts[0].Username, iphoneUA)
	for _, a := range []*testApp{one, two} {
		name := a.h.Accounts[0].Username
		w := httptest.NewRecorder()
		err := serveAdmin(w, httptest.NewRequest("GET", "/miniapp/sessions?realm=admin-two&user="+name, nil))
		var listed []gate.View
		if err != nil || json.Unmarshal(w.Body.Bytes(), &listed) != nil || len(listed) != 1 {
			t.Errorf("sessions of %s: %v %s", name, err, w.Body)
		}
	}
}

// TestAdminSameNameOnTwoSites: two sites of one realm that each have a
// user "ada" with their own password hash are two accounts: the list
// tags each session with its account, and a sign-out reaches both and
// says so.
func TestAdminSameNameOnTwoSites(t *testing.T) {
	storage := t.TempDir()
	one := newApp(t, storage, func(h *Handler) { h.Realm = "admin-same" })
	two := newApp(t, storage, func(h *Handler) {
		h.Realm = "admin-same"
		h.Accounts = []Account{{Username: "ada", Password: testhash.Bcrypt(adaPassword)}}
	})
	one.loginWith("ada", firefoxUA)
	one.loginWith("ada", firefoxUA)
	two.loginWith("ada", iphoneUA)
	w := httptest.NewRecorder()
	if err := serveAdmin(w, httptest.NewRequest("GET", "/miniapp/sessions?realm=admin-same&user=ada", nil)); err != nil {
		t.Fatal(err)
	}
	var listed []gate.View
	if err := json.Unmarshal(w.Body.Bytes(), &listed); err != nil || len(listed) != 3 {
		t.Fatalf("sessions: %v %s", err, w.Body)
	}
	tags := map[string]int{}
	for _, s := range listed {
		if len(s.Account) == 8 {
			tags[s.Account]++
		}
	}
	if counts := slices.Sorted(maps.Values(tags)); fmt.Sprint(counts) != "[1 2]" {
		t.Errorf("account tags %v, want one for the iPhone's account and one shared by the other two", tags)
	}
	w = httptest.NewRecorder()
	if err := serveAdmin(w, httptest.NewRequest("POST", "/miniapp/signout?realm=admin-same&user=ada", nil)); err != nil {
		t.Fatal(err)
	}
	if got := w.Body.String(); got != `{"user":"ada","ended":3,"accounts":2}`+"\n" {
		t.Errorf("signout answered %s", got)
	}
}

// TestAdminRefusesWithoutEcho: a user name past the longest a user may
// have, or with control characters, and a malformed realm are 400; no
// refusal repeats what was sent.
func TestAdminRefusesWithoutEcho(t *testing.T) {
	newApp(t, "", func(h *Handler) { h.Realm = "admin-echo" })
	long := strings.Repeat("x", 2000)
	for _, c := range []struct {
		query  string
		status int
		sent   string
	}{
		{"user=" + long + "&realm=admin-echo", 400, long},
		{"user=%1b%5b2Jada&realm=admin-echo", 400, "\x1b"},
		{"user=mallory-was-here&realm=admin-echo", 404, "mallory-was-here"},
		{"user=ada&realm=%3Cscript%3E", 400, "<script>"},
		{"user=ada&realm=no-such-realm-here", 404, "no-such-realm-here"},
	} {
		err := serveAdmin(httptest.NewRecorder(), httptest.NewRequest("GET", "/miniapp/sessions?"+c.query, nil))
		apiErr, ok := errors.AsType[caddy.APIError](err)
		if !ok || apiErr.HTTPStatus != c.status || strings.Contains(apiErr.Err.Error(), c.sent) {
			t.Errorf("%.40s: %v, want %d without the input", c.query, err, c.status)
		}
	}
	if err := serveAdmin(httptest.NewRecorder(), httptest.NewRequest("DELETE", "/miniapp/sessions/0123456789abcdef0123456789abcdef?realm=admin-echo", nil)); err == nil || strings.Contains(err.Error(), "0123456789abcdef") {
		t.Errorf("an unknown session ID: %v", err)
	}
}

// TestAdminTOTP: the admin API shows a user's second factor and removes
// it (a lost phone), ending the user's sessions, logged with who did it.
func TestAdminTOTP(t *testing.T) {
	a := newApp(t, "", func(h *Handler) { h.Realm = "admin-totp" })
	e := a.enrol("ada", adaPassword)
	get := func() string {
		w := httptest.NewRecorder()
		if err := serveAdmin(w, httptest.NewRequest("GET", "/miniapp/totp?realm=admin-totp&user=ada", nil)); err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(w.Body.String())
	}
	if got := get(); got != `{"enrolled":true,"recovery_codes_left":10}` {
		t.Fatalf("GET: %s", got)
	}
	w := httptest.NewRecorder()
	err := serveAdmin(w, httptest.NewRequest("DELETE", "/miniapp/totp?realm=admin-totp&user=ada", nil))
	if err != nil || strings.TrimSpace(w.Body.String()) != `{"user":"ada","removed":true,"ended":1}` {
		t.Fatalf("DELETE: %v %s", err, w.Body)
	}
	if got := get(); got != `{"enrolled":false,"recovery_codes_left":0}` {
		t.Errorf("GET after the reset: %s", got)
	}
	if code, _ := a.profileOf(e.session); code != 401 {
		t.Errorf("a session after the reset: %d", code)
	}
	if logs := a.logs.FilterMessage("second factor removed").FilterField(zap.String("by", "admin API")); logs.Len() != 1 {
		t.Errorf("%d log lines of the reset", logs.Len())
	}
	for _, tc := range []struct {
		method, target string
		status         int
	}{
		{"POST", "/miniapp/totp?realm=admin-totp&user=ada", 405},
		{"GET", "/miniapp/totp?realm=admin-totp&user=nobody", 404},
		{"DELETE", "/miniapp/totp?realm=admin-totp", 400},
	} {
		err := serveAdmin(httptest.NewRecorder(), httptest.NewRequest(tc.method, tc.target, nil))
		var apiErr caddy.APIError
		if !errors.As(err, &apiErr) || apiErr.HTTPStatus != tc.status {
			t.Errorf("%s %s: %v, want %d", tc.method, tc.target, err, tc.status)
		}
	}
}

// TestAdminPasskeys: the admin API lists a user's passkeys and removes
// one by its ID, ending the sessions it started.
func TestAdminPasskeys(t *testing.T) {
	a := newApp(t, "", func(h *Handler) { h.Realm = "admin-passkeys" })
	auth := newAuthenticator(t, passkeyHost)
	if w := a.register(auth, a.httpsLogin("ada", adaPassword), "laptop"); w.Code != 201 {
		t.Fatalf("registration: %d %q", w.Code, w.Body)
	}
	started := sessionCookie(t, a.passkeyLogin(auth))
	w := httptest.NewRecorder()
	if err := serveAdmin(w, httptest.NewRequest("GET", "/miniapp/passkeys?realm=admin-passkeys&user=ada", nil)); err != nil {
		t.Fatal(err)
	}
	var listed []passkey.View
	if err := json.Unmarshal(w.Body.Bytes(), &listed); err != nil || len(listed) != 1 || listed[0].Name != "laptop" || listed[0].LastUsed == nil {
		t.Fatalf("GET: %v %s", err, w.Body)
	}
	id := b64url.EncodeToString(auth.id)
	w = httptest.NewRecorder()
	if err := serveAdmin(w, httptest.NewRequest("DELETE", "/miniapp/passkeys/"+id+"?realm=admin-passkeys", nil)); err != nil {
		t.Fatal(err)
	}
	var removed admin.PasskeyDeleted
	if err := json.Unmarshal(w.Body.Bytes(), &removed); err != nil || removed.User != "ada" || removed.Passkey.ID != id {
		t.Fatalf("DELETE: %v %s", err, w.Body)
	}
	if code, _ := a.httpsProfile(started); code != 401 {
		t.Errorf("a session the removed passkey started: %d", code)
	}
	for target, status := range map[string]int{
		"/miniapp/passkeys/" + id + "?realm=admin-passkeys": 404,
		"/miniapp/passkeys/!!?realm=admin-passkeys":         400,
	} {
		err := serveAdmin(httptest.NewRecorder(), httptest.NewRequest("DELETE", target, nil))
		var apiErr caddy.APIError
		if !errors.As(err, &apiErr) || apiErr.HTTPStatus != status {
			t.Errorf("DELETE %s: %v, want %d", target, err, status)
		}
	}
}

// TestAdminPasskeysReset: DELETE /miniapp/passkeys?user= clears a
// passkeys record that no longer opens (which no user or single delete
// can), ends the user's sessions, and says whether there was one.
func TestAdminPasskeysReset(t *testing.T) {
	a := newApp(t, "", func(h *Handler) { h.Realm = "admin-passkeys-reset" })
	auth := newAuthenticator(t, passkeyHost)
	if w := a.register(auth, a.httpsLogin("ada", adaPassword), "laptop"); w.Code != 201 {
		t.Fatalf("registration: %d %q", w.Code, w.Body)
	}
	signedIn := sessionCookie(t, a.passkeyLogin(auth))
	key := "passkeys:ada"
	if ok, err := a.h.app.Shared.SwapRecord(context.Background(), key, a.h.app.Shared.Record(key), []byte("edited in the store")); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if err := serveAdmin(httptest.NewRecorder(), httptest.NewRequest("GET", "/miniapp/passkeys?realm=admin-passkeys-reset&user=ada", nil)); err == nil {
		t.Error("GET of a record that does not open answered")
	}
	// the user is told it is the passkeys, the log names the reset that fixes it
	w := a.do(passkeyRequest("POST", routes.PasskeysPath, form, "action=begin", a.stepUpSession("ada", 2, 0)))
	if w.Code != 403 || !strings.Contains(w.Body.String(), "your passkeys cannot be read") || a.logs.FilterMessageSnippet("passkeys-reset").Len() != 1 ||
		strings.Contains(a.logText(), "totp-reset") || strings.Contains(a.logText(), "second factor refused") {
		t.Errorf("adding a passkey beside a record that does not open: %d %q\n%s", w.Code, w.Body, a.logText())
	}
	for i, want := range []admin.RecordReset{{User: "ada", Removed: true, Ended: 2}, {User: "ada", Removed: false, Ended: 0}} {
		w := httptest.NewRecorder()
		if err := serveAdmin(w, httptest.NewRequest("DELETE", "/miniapp/passkeys?realm=admin-passkeys-reset&user=ada", nil)); err != nil {
			t.Fatal(err)
		}
		var got admin.RecordReset
		if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil || got != want {
			t.Errorf("DELETE %d: %v %s, want %+v", i, err, w.Body, want)
		}
	}
	if a.h.app.Shared.Record(key) != nil {
		t.Error("the record is still there")
	}
	if code, _ := a.httpsProfile(signedIn); code != 401 {
		t.Errorf("a session after the reset: %d", code)
	}
	if w := a.register(newAuthenticator(t, passkeyHost), a.stepUpSession("ada", 1, 0), "new"); w.Code != 201 {
		t.Errorf("a new passkey after the reset: %d %q", w.Code, w.Body)
	}
}

// serveAdmin serves a request of the admin API as Caddy's admin server
// would: by the longest route pattern that matches its path.
func serveAdmin(w http.ResponseWriter, r *http.Request) error {
	var best caddy.AdminRoute
	for _, route := range (admin.API{}).Routes() {
		if (r.URL.Path == route.Pattern || strings.HasSuffix(route.Pattern, "/") && strings.HasPrefix(r.URL.Path, route.Pattern)) &&
			len(route.Pattern) > len(best.Pattern) {
			best = route
		}
	}
	if best.Handler == nil {
		return caddy.APIError{HTTPStatus: http.StatusNotFound}
	}
	return best.Handler.ServeHTTP(w, r)
}
