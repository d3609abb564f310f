package signin

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"github.com/caddy-miniapp/miniapp/internal/account"
	"github.com/caddy-miniapp/miniapp/internal/idp"
	"github.com/caddy-miniapp/miniapp/internal/session"
	"github.com/caddyserver/caddy/v2"
)

// linkedWorld is a world whose ada is linked to company's sub-1 and
// grace to her address there.
func linkedWorld(t *testing.T) *world {
	t.Helper()
	w := newWorld(t)
	accounts, err := account.Load([]account.Config{
		{Username: "ada", Password: adaHash, Links: []account.Link{{Provider: "company", Subject: "sub-1"}}},
		{Username: "grace", Password: graceHash, Links: []account.Link{{Provider: "company", Subject: "Grace@example.test"}}},
	}, "r", caddy.NewReplacer())
	if err != nil {
		t.Fatal(err)
	}
	w.s.Accounts, w.s.Gate.Accounts = accounts, accounts
	return w
}

// TestProviderLinks: an identity signs in as the account linked to its
// ID; by e-mail only where the provider's block allows it and vouches
// for the address; one linked to no account is refused with 403,
// counted as a failed login of the client, until the throttle stops it.
func TestProviderLinks(t *testing.T) {
	w := linkedWorld(t)
	ctx := context.Background()
	company := &idp.Provider{Name: "company"}
	h := http.Header{}
	out := w.s.Provider(ctx, h, company, idp.Identity{Provider: "company", Subject: "sub-1"}, w.client("192.0.2.7"))
	if out.Err != nil || out.Session == nil || out.Session.User != "ada" || out.Session.Factors != 1 || out.Session.Method != session.MethodProvider {
		t.Fatalf("ada through company: %+v", out)
	}
	if s, _ := w.s.Gate.Open(w.back(t, h), false); s == nil || s.ID != out.Session.ID {
		t.Error("the session's cookie does not open")
	}
	byEmail := idp.Identity{Provider: "company", Subject: "sub-2", Email: "grace@example.test", EmailVerified: true}
	if out := w.s.Provider(ctx, http.Header{}, company, byEmail, w.client("192.0.2.7")); refusal(out) == nil || refusal(out).Status != http.StatusForbidden {
		t.Errorf("an e-mail link without link_by_email: %+v", out)
	}
	company.LinkByEmail = true
	unverified := byEmail
	unverified.EmailVerified = false
	if out := w.s.Provider(ctx, http.Header{}, company, unverified, w.client("192.0.2.7")); refusal(out) == nil {
		t.Errorf("an unverified address linked: %+v", out)
	}
	if out := w.s.Provider(ctx, http.Header{}, company, byEmail, w.client("192.0.2.7")); out.Session == nil || out.Session.User != "grace" {
		t.Errorf("grace by her verified address: %+v", out)
	}
	other := &idp.Provider{Name: "other"}
	if out := w.s.Provider(ctx, http.Header{}, other, idp.Identity{Provider: "other", Subject: "sub-1"}, w.client("192.0.2.7")); refusal(out) == nil ||
		refusal(out).Reason != "this account is not allowed here" || out.Form != PasswordForm {
		t.Errorf("ada's ID at another provider: %+v", out)
	}
	if w.count.of("login failure") != 3 {
		t.Errorf("failures counted %v", w.count.counts)
	}
	for range loginLimit {
		w.s.Provider(ctx, http.Header{}, other, idp.Identity{Provider: "other", Subject: "x"}, w.client("192.0.2.8"))
	}
	if out := w.s.Provider(ctx, http.Header{}, company, idp.Identity{Provider: "company", Subject: "sub-1"}, w.client("192.0.2.8")); refusal(out) == nil ||
		refusal(out).Status != http.StatusTooManyRequests {
		t.Errorf("a client past its failures: %+v", out)
	}
}

// TestProviderSecondFactor: a linked user with a second factor is asked
// for its code, and the code step ends in a session of two factors that
// began at the provider; a provider's own second factor counts only
// where its block trusts it.
func TestProviderSecondFactor(t *testing.T) {
	w := linkedWorld(t)
	ctx := context.Background()
	w.enrol(t, "ada")
	company := &idp.Provider{Name: "company"}
	mfa := idp.Identity{Provider: "company", Subject: "sub-1", MFA: true}
	h := http.Header{}
	if out := w.s.Provider(ctx, h, company, mfa, w.client("192.0.2.9")); !out.CodeNeeded || out.Session != nil {
		t.Fatalf("ada with a factor, the provider's untrusted: %+v", out)
	}
	pending, acct := w.s.Gate.Pending(ctx, w.back(t, h))
	if pending == nil {
		t.Fatal("no pending sign-in")
	}
	out := w.s.Code(ctx, http.Header{}, Login{Code: w.code(t), Client: w.client("192.0.2.9"), Pending: pending, PendingAccount: acct})
	if out.Session == nil || out.Session.Factors != 2 || out.Session.Method != session.MethodProvider {
		t.Errorf("the code step: %+v", out)
	}
	company.TrustProviderMFA = true
	if out := w.s.Provider(ctx, http.Header{}, company, mfa, w.client("192.0.2.9")); out.Session == nil || out.Session.Factors != 2 {
		t.Errorf("the provider's trusted second factor: %+v", out)
	}
	mfa.MFA = false
	if out := w.s.Provider(ctx, http.Header{}, company, mfa, w.client("192.0.2.9")); !out.CodeNeeded {
		t.Errorf("a trusting provider that checked no second factor: %+v", out)
	}
}

// TestProviderGuests: an identity linked to no account that the guests
// block admits gets a guest's session (<provider>:<id>, the given and
// prefixed groups, its claims in the cookie, nothing stored), which
// opens while the config admits it; with second_factor required only a
// provider's trusted second factor lets a guest in.
func TestProviderGuests(t *testing.T) {
	w := linkedWorld(t)
	ctx := context.Background()
	company := &idp.Provider{Name: "company", Label: "Company"}
	w.s.Guests = &idp.Guests{From: []string{"company"}, Groups: []string{"staff"}, GiveGroups: []string{"readers"}}
	w.s.Gate.Guests = w.s.GuestAccount
	erin := idp.Identity{Provider: "company", Subject: "sub-erin", Username: "erin", Email: "erin@example.test", EmailVerified: true,
		Groups: []string{"staff", "ops"}}
	h := http.Header{}
	out := w.s.Provider(ctx, h, company, erin, w.client("192.0.2.20"))
	if out.Session == nil || out.Session.User != "company:sub-erin" || out.Session.Account.FullName != "erin" ||
		out.Session.Account.GroupList != "readers,company:staff,company:ops" || out.Session.Account.Email != "erin@example.test" {
		t.Fatalf("erin as a guest: %+v", out)
	}
	opened, why := w.s.Gate.Open(w.back(t, h), false)
	if opened == nil || opened.Account.GroupList != "readers,company:staff,company:ops" || opened.Guest == nil {
		t.Fatalf("the guest's cookie opens as %+v %q", opened, why)
	}
	if len(w.s.TOTP.Records.Realm.RecordKeys()) != 0 {
		t.Errorf("a guest's sign-in stored %v", w.s.TOTP.Records.Realm.RecordKeys())
	}
	outsider := erin
	outsider.Subject, outsider.Groups = "sub-x", []string{"ops"}
	if out := w.s.Provider(ctx, http.Header{}, company, outsider, w.client("192.0.2.20")); refusal(out) == nil || refusal(out).Status != http.StatusForbidden {
		t.Errorf("an identity the guests block does not admit: %+v", out)
	}
	// a config that no longer admits the guest ends its session
	w.s.Guests.Groups = []string{"admins"}
	if opened, _ := w.s.Gate.Open(w.back(t, h), false); opened != nil {
		t.Error("a guest's session opens after the config stopped admitting it")
	}
	w.s.Guests.Groups = nil
	w.s.Required = true
	if out := w.s.Provider(ctx, http.Header{}, company, erin, w.client("192.0.2.21")); refusal(out) == nil {
		t.Errorf("a guest of one factor with second_factor required: %+v", out)
	}
	company.TrustProviderMFA, erin.MFA = true, true
	if out := w.s.Provider(ctx, http.Header{}, company, erin, w.client("192.0.2.21")); out.Session == nil || out.Session.Factors != 2 {
		t.Errorf("a guest with the provider's trusted second factor: %+v", out)
	}
}

// TestGuestManyGroups: a guest whose asked-for group comes after more
// groups than the cookie carries is admitted, and its session opens:
// the asked-for groups go first, and the conditions hold for what the
// cookie carries.
func TestGuestManyGroups(t *testing.T) {
	w := linkedWorld(t)
	w.s.Guests = &idp.Guests{From: []string{"company"}, Groups: []string{"staff"}}
	w.s.Gate.Guests = w.s.GuestAccount
	var groups []string
	for i := range 60 {
		groups = append(groups, fmt.Sprintf("group-with-a-long-name-%02d", i))
	}
	id := idp.Identity{Provider: "company", Subject: "sub-many", Groups: append(groups, "staff")}
	h := http.Header{}
	out := w.s.Provider(context.Background(), h, &idp.Provider{Name: "company"}, id, w.client("192.0.2.30"))
	if out.Session == nil || !out.Session.Account.HasGroup("company:staff") {
		t.Fatalf("a guest with many groups: %+v", out)
	}
	if opened, why := w.s.Gate.Open(w.back(t, h), false); opened == nil {
		t.Errorf("the guest's session does not open: %q", why)
	}
}
