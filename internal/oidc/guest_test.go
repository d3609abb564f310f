package oidc

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/account"
	"github.com/caddy-miniapp/miniapp/internal/records"
	"github.com/caddy-miniapp/miniapp/internal/session"
	"github.com/caddy-miniapp/miniapp/internal/testhash"
	"github.com/caddy-miniapp/miniapp/internal/users"
	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
)

// TestGuest: a guest (a user a provider vouched for, without an account
// here) signs in to an app as its own subject, keyed
// guest:<provider>:<id>: its ID as preferred_username (never its name at
// the provider, which may be a configured user's), its name, verified
// address and groups (the given and the prefixed ones, so a client's
// local groups are never met by a provider's); its tokens live while
// the config admits it.
func TestGuest(t *testing.T) {
	f := newFixture(t)
	admitted := true
	f.p.guests = func(user string, g *session.Guest) (*account.Account, bool) {
		if !admitted {
			return nil, false
		}
		groups := []string{"readers"}
		for _, group := range g.Groups {
			groups = append(groups, "company:"+group)
		}
		return account.Guest("r", user, g.Name, g.Email, groups), true
	}
	claims := &session.Guest{Name: "ada", Email: "erin@example.test", Groups: []string{"staff"}}
	acct, _ := f.p.guests("company:sub-erin", claims)
	s := f.signed(acct, 1)
	s.Guest, s.Key = claims, "guest:company:sub-erin"
	tok := f.exchange(t, "cli", cliURI, f.code(t, "cli", cliURI, "openid profile email groups", s))
	if tok.status != http.StatusOK || tok.IDToken == "" {
		t.Fatalf("token: %+v", tok)
	}
	id := f.idClaims(t, tok.IDToken)
	sub := Subject("r", "guest:company:sub-erin")
	if id["sub"] != sub || sub == Subject("r", "cfg:company:sub-erin") || id["preferred_username"] != "company:sub-erin" || id["name"] != "ada" ||
		id["email"] != "erin@example.test" {
		t.Errorf("a guest's ID token: %v", id)
	}
	if groups, _ := json.Marshal(id["groups"]); string(groups) != `["readers","company:staff"]` {
		t.Errorf("a guest's groups: %s", groups)
	}
	if status, info, _ := f.userinfo(tok.AccessToken); status != http.StatusOK || info["sub"] != sub || info["preferred_username"] != "company:sub-erin" {
		t.Errorf("a guest's userinfo: %d %v", status, info)
	}
	// grafana wants the local group staff, which company:staff is not
	if loc := f.respond(t, start(t, f, "grafana", grafanaURI), s); loc.Query().Get("error") != "access_denied" {
		t.Errorf("a guest of the provider's staff at a client of the local staff: %s", loc)
	}
	admitted = false
	if status, _, _ := f.userinfo(tok.AccessToken); status != http.StatusUnauthorized {
		t.Errorf("a guest the config no longer admits: userinfo %d", status)
	}
}

// start is an authorization request's ID at the callback.
func start(t *testing.T, f *fixture, clientID, redirect string) string {
	t.Helper()
	id, w := f.authorize(t, query(clientID, redirect, "openid"))
	if id == "" {
		t.Fatalf("authorize: %d %s", w.Code, w.Body)
	}
	return id
}

// TestLinkBound: the tokens of a session begun through a provider live
// while the account still has that link, as the session does; removing
// the link ends them, and the account's other tokens live on.
func TestLinkBound(t *testing.T) {
	f := newFixture(t)
	hash := testhash.Bcrypt("pw")
	load := func(links ...account.Link) *account.Account {
		set, err := account.Load([]account.Config{{Username: "ada", Password: hash, Groups: []string{"staff"}, Links: links}}, "r", caddy.NewReplacer())
		if err != nil {
			t.Fatal(err)
		}
		f.p.accounts = set
		acct, _ := set.Lookup("ada")
		return acct
	}
	link := account.Link{Provider: "company", Subject: "sub-1"}
	ada := load(link)
	viaLink := f.signed(ada, 1)
	tag := ada.LinkTag(link)
	viaLink.Link = tag[:]
	linked := f.exchange(t, "grafana", grafanaURI, f.code(t, "grafana", grafanaURI, "openid", viaLink))
	other := f.exchange(t, "grafana", grafanaURI, f.code(t, "grafana", grafanaURI, "openid", f.signed(ada, 1)))
	if status, _, _ := f.userinfo(linked.AccessToken); status != http.StatusOK {
		t.Fatalf("a token through the link: userinfo %d", status)
	}
	load(account.Link{Provider: "company", Subject: "sub-2"})
	if status, _, _ := f.userinfo(linked.AccessToken); status != http.StatusUnauthorized {
		t.Errorf("a token through a link since changed: userinfo %d", status)
	}
	if status, _, _ := f.userinfo(other.AccessToken); status != http.StatusOK {
		t.Errorf("a token of the account's password session: userinfo %d", status)
	}
}

// managedUser makes a managed user of the name with a password, as its
// invite would.
func managedUser(t *testing.T, u *users.Service, name string) *account.Account {
	t.Helper()
	ctx := context.Background()
	token, err := u.Create(ctx, name, users.Profile{}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	r, err := u.Redeem(ctx, token)
	if err != nil {
		t.Fatal(err)
	}
	acct, err := u.Use(ctx, r, testhash.Bcrypt("pw"))
	if err != nil {
		t.Fatal(err)
	}
	return acct
}

// TestManagedSubject: a managed account's sub is derived from its
// immutable ID, never its name: one removed and made again under the
// same name is another subject, and neither is a configured user's of
// that name.
func TestManagedSubject(t *testing.T) {
	f := newFixture(t)
	u := &users.Service{Realm: "r", Records: f.p.records, Config: f.p.accounts, Hash: users.Argon2id, Clock: f.clock}
	f.p.accounts.Manage(u)
	ctx := context.Background()
	subOf := func() string {
		t.Helper()
		acct := managedUser(t, u, "mia")
		tok := f.exchange(t, "cli", cliURI, f.code(t, "cli", cliURI, "openid profile", f.signed(acct, 1)))
		claims := f.idClaims(t, tok.IDToken)
		if claims["sub"] != Subject("r", "uid:"+acct.UID) || claims["preferred_username"] != "mia" {
			t.Errorf("mia's ID token: %v", claims)
		}
		sub, _ := claims["sub"].(string)
		return sub
	}
	first := subOf()
	if _, err := u.Remove(ctx, "mia"); err != nil {
		t.Fatal(err)
	}
	if second := subOf(); second == first || first == Subject("r", "cfg:mia") {
		t.Errorf("mia made again has the removed mia's sub, or a configured mia's")
	}
}

// TestManagedGrantsTold: a managed account's grants live under its ID;
// LoggedOutAccount tells its apps by that record, and a sweep tells
// them once the name leads to another account (a Caddyfile user given
// the name), while the managed account's own record stays readable.
func TestManagedGrantsTold(t *testing.T) {
	f := newFixture(t)
	uri, tokens := receiver(t, http.StatusOK)
	f.p.cfg.client("cli").BackchannelLogoutURI = uri
	u := &users.Service{Realm: "r", Records: f.p.records, Config: f.p.accounts, Hash: users.Argon2id, Clock: f.clock}
	f.p.accounts.Manage(u)
	ctx := context.Background()
	mia := managedUser(t, u, "mia")
	f.exchange(t, "cli", cliURI, f.code(t, "cli", cliURI, "openid offline_access", f.signed(mia, 1)))
	key := mia.RecordKey(GrantsKind)
	if f.p.records.Get(key) == nil || f.p.records.Get("oidc-grants:mia") != nil {
		t.Fatalf("mia's grants are not under her ID")
	}
	f.p.LoggedOutAccount(mia)
	if claims := f.logoutClaims(t, next(t, tokens)); claims["sub"] != Subject("r", "uid:"+mia.UID) {
		t.Errorf("LoggedOutAccount told %v", claims)
	}
	// a reload gives the name to the Caddyfile
	shadowing, err := account.Load([]account.Config{{Username: "mia", Password: testhash.Bcrypt("other")}}, "r", caddy.NewReplacer())
	if err != nil {
		t.Fatal(err)
	}
	shadowing.Manage(u)
	rec := &records.Store{Realm: f.p.records.Realm, Keys: f.p.records.Keys, Logger: zap.NewNop(), Accounts: shadowing}
	p, err := New(ctx, f.p.cfg, Options{Realm: "r", Accounts: shadowing, Shared: f.p.shared, Records: rec,
		Keys: f.p.seal, Clock: f.p.clock, Counter: f.counts})
	if err != nil {
		t.Fatal(err)
	}
	p.Sweep(ctx)
	if claims := f.logoutClaims(t, next(t, tokens)); claims["sub"] != Subject("r", "uid:"+mia.UID) || claims["aud"] != "cli" {
		t.Errorf("the sweep told %v", claims)
	}
	if list, err := p.grantsAt(key); err != nil || len(list.Grants) != 1 || !list.Grants[0].Told {
		t.Errorf("mia's record after the sweep: %+v %v", list, err)
	}
}
