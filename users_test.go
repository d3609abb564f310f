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
	_, fake, mixed, err := loadAccounts(accounts, defaultRealm, repl)
	if err != nil {
		t.Fatal(err)
	}
	if !mixed || hashParams(string(fake.hash)) != hashParams(graceHash) {
		t.Errorf("fake %q, mixed %v: want argon2id parameters of most users", fake.hash, mixed)
	}
	_, fake, mixed, err = loadAccounts(accounts[:1], defaultRealm, repl)
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

func TestFakeHashLike(t *testing.T) {
	for _, hash := range []string{adaHash, graceHash} {
		fake, err := fakeHashLike(hash)
		if err != nil {
			t.Fatal(err)
		}
		cmp, err := comparerFor(string(fake))
		if err != nil {
			t.Fatalf("fake %q does not parse: %v", fake, err)
		}
		if ok, err := cmp.Compare(fake, []byte(adaPassword)); ok || err != nil {
			t.Errorf("fake hash matched or failed: %v %v", ok, err)
		}
		prefix := strings.Join(strings.Split(hash, "$")[:4], "$")
		if strings.HasPrefix(hash, "$2") {
			prefix = hash[:7]
		}
		if !strings.HasPrefix(string(fake), prefix) || len(fake) != len(hash) || string(fake) == hash {
			t.Errorf("fake %q does not keep the parameters of %q", fake, hash)
		}
	}
}

// BenchmarkLogin compares the two failing paths of a login: a wrong
// password for a known user and any password for an unknown one. Their
// ns/op must match (the unknown name is checked against a fake hash of
// the same algorithm and cost), or the timing tells which names exist.
func BenchmarkLogin(b *testing.B) {
	for _, bc := range []struct{ name, hash, user string }{
		{"bcrypt/wrong_password", adaHash, "ada"},
		{"bcrypt/unknown_user", adaHash, "mallory"},
		{"argon2id/wrong_password", graceHash, "grace"},
		{"argon2id/unknown_user", graceHash, "mallory"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			a := newApp(b, "", func(h *Handler) {
				h.Accounts = []caddyauth.Account{{Username: bc.user, Password: bc.hash}}
				if bc.user == "mallory" {
					h.Accounts[0].Username = "someone"
				}
				h.LoginLimit = &LoginLimit{Failures: 1 << 30, Window: caddy.Duration(time.Minute)}
			})
			body := "username=" + bc.user + "&password=wrong"
			b.ResetTimer()
			for b.Loop() {
				if w := a.do(request{method: "POST", target: "/login", contentType: form, body: body}); w.Code != 401 {
					b.Fatalf("status %d", w.Code)
				}
			}
		})
	}
}
