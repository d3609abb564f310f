package miniapp

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/caddyauth"
)

// recordingComparer stands in for a Caddy hash comparer: it records the
// hashes it was asked to compare with, and answers with err.
type recordingComparer struct {
	hashes []string
	err    error
}

func (c *recordingComparer) Compare(hashed, _ []byte) (bool, error) {
	c.hashes = append(c.hashes, string(hashed))
	return false, c.err
}

func TestUnknownUserComparesFakeHash(t *testing.T) {
	a := newApp(t, "", nil)
	stub := &recordingComparer{}
	a.h.fakeAccount.comparer = stub
	w := a.do(request{method: "POST", target: "/login", contentType: form, body: "username=mallory&password=x"})
	if w.Code != 401 || len(stub.hashes) != 1 || stub.hashes[0] != string(a.h.fakeAccount.hash) {
		t.Fatalf("unknown user: %d, compared %v", w.Code, stub.hashes)
	}
	// a known user is compared with its own hash, never the fake one
	a.do(request{method: "POST", target: "/login", contentType: form, body: "username=ada&password=x"})
	if len(stub.hashes) != 1 {
		t.Errorf("known user compared with the fake hash")
	}
}

func TestFakeHashFollowsMostUsers(t *testing.T) {
	repl := caddy.NewReplacer()
	accounts := []caddyauth.Account{{Username: "a", Password: adaHash}, {Username: "b", Password: graceHash}, {Username: "c", Password: argon2idHash("x")}}
	_, fake, mixed, err := loadAccounts(accounts, repl)
	if err != nil {
		t.Fatal(err)
	}
	if !mixed || hashParams(string(fake.hash)) != hashParams(graceHash) {
		t.Errorf("fake %q, mixed %v: want argon2id parameters of most users", fake.hash, mixed)
	}
	_, fake, mixed, err = loadAccounts(accounts[:1], repl)
	if err != nil || mixed || hashParams(string(fake.hash)) != hashParams(adaHash) {
		t.Errorf("single user: fake %q, mixed %v, %v", fake.hash, mixed, err)
	}
}

func TestMixedHashesWarn(t *testing.T) {
	mixed := newApp(t, "", nil)
	alike := newApp(t, "", func(h *Handler) { h.Accounts = h.Accounts[:1] })
	if mixed.logs.FilterMessageSnippet("hashes differ").Len() != 1 || alike.logs.FilterMessageSnippet("hashes differ").Len() != 0 {
		t.Error("no warning for mixed hash parameters, or one for alike ones")
	}
}

// TestComparerFailure: a hash that fails to compare is an internal error:
// logged with its cause, a bare 500 for the client, and no session.
func TestComparerFailure(t *testing.T) {
	a := newApp(t, "", func(h *Handler) { h.LoginLimit = &LoginLimit{Failures: 2, Window: caddy.Duration(time.Minute)} })
	a.h.users["ada"].comparer = &recordingComparer{err: errors.New("hash engine exploded")}
	w := a.do(request{method: "POST", target: "/login", contentType: form, body: "username=ada&password=" + adaPassword})
	if w.Code != 500 || w.Body.String() != "internal server error\n" || len(w.Result().Cookies()) != 0 {
		t.Fatalf("comparer failure: %d %q", w.Code, w.Body.String())
	}
	logged := a.logs.FilterMessage("internal error").All()
	if len(logged) != 1 || !strings.Contains(logged[0].ContextMap()["error"].(string), "hash engine exploded") {
		t.Errorf("cause not logged: %v", logged)
	}
	// the failure was not the client's, so the throttle does not count it
	a.do(request{method: "POST", target: "/login", contentType: form, body: "username=grace&password=wrong"})
	if w := a.do(request{method: "POST", target: "/login", contentType: form, body: "username=grace&password=" + gracePassword}); w.Code != 303 {
		t.Errorf("an internal error counted as a failed login: %d", w.Code)
	}
}
