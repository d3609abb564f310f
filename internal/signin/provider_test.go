package signin

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/account"
	"github.com/caddy-miniapp/miniapp/internal/idp"
	"github.com/caddy-miniapp/miniapp/internal/session"
	"github.com/caddy-miniapp/miniapp/store"
	"github.com/caddyserver/caddy/v2"
)

// vouch is an exchange whose provider vouches for id.
func vouch(id idp.Identity) Exchange {
	return func(context.Context) (idp.Identity, error) { return id, nil }
}

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
	out := w.s.Provider(ctx, h, company, vouch(idp.Identity{Provider: "company", Subject: "sub-1"}), w.client("192.0.2.7"))
	if out.Err != nil || out.Session == nil || out.Session.User != "ada" || out.Session.Factors != 1 || out.Session.Method != session.MethodProvider {
		t.Fatalf("ada through company: %+v", out)
	}
	if s, _ := w.s.Gate.Open(w.back(t, h), false); s == nil || s.ID != out.Session.ID {
		t.Error("the session's cookie does not open")
	}
	byEmail := idp.Identity{Provider: "company", Subject: "sub-2", Email: "grace@example.test", EmailVerified: true}
	if out := w.s.Provider(ctx, http.Header{}, company, vouch(byEmail), w.client("192.0.2.7")); refusal(out) == nil || refusal(out).Status != http.StatusForbidden {
		t.Errorf("an e-mail link without link_by_email: %+v", out)
	}
	company.LinkByEmail = true
	unverified := byEmail
	unverified.EmailVerified = false
	if out := w.s.Provider(ctx, http.Header{}, company, vouch(unverified), w.client("192.0.2.7")); refusal(out) == nil {
		t.Errorf("an unverified address linked: %+v", out)
	}
	if out := w.s.Provider(ctx, http.Header{}, company, vouch(byEmail), w.client("192.0.2.7")); out.Session == nil || out.Session.User != "grace" {
		t.Errorf("grace by her verified address: %+v", out)
	}
	other := &idp.Provider{Name: "other"}
	if out := w.s.Provider(ctx, http.Header{}, other, vouch(idp.Identity{Provider: "other", Subject: "sub-1"}), w.client("192.0.2.7")); refusal(out) == nil ||
		refusal(out).Reason != "this account is not allowed here" || out.Form != PasswordForm {
		t.Errorf("ada's ID at another provider: %+v", out)
	}
	if w.count.of("login failure") != 3 {
		t.Errorf("failures counted %v", w.count.counts)
	}
	for range loginLimit {
		w.s.Provider(ctx, http.Header{}, other, vouch(idp.Identity{Provider: "other", Subject: "x"}), w.client("192.0.2.8"))
	}
	if out := w.s.Provider(ctx, http.Header{}, company, vouch(idp.Identity{Provider: "company", Subject: "sub-1"}), w.client("192.0.2.8")); refusal(out) == nil ||
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
	if out := w.s.Provider(ctx, h, company, vouch(mfa), w.client("192.0.2.9")); !out.CodeNeeded || out.Session != nil {
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
	if out := w.s.Provider(ctx, http.Header{}, company, vouch(mfa), w.client("192.0.2.9")); out.Session == nil || out.Session.Factors != 2 {
		t.Errorf("the provider's trusted second factor: %+v", out)
	}
	mfa.MFA = false
	if out := w.s.Provider(ctx, http.Header{}, company, vouch(mfa), w.client("192.0.2.9")); !out.CodeNeeded {
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
	out := w.s.Provider(ctx, h, company, vouch(erin), w.client("192.0.2.20"))
	if out.Session == nil || out.Session.User != "company:sub-erin" || out.Session.Account.FullName != "erin" ||
		out.Session.Account.GroupList != "readers,company:staff,company:ops" || out.Session.Account.Email != "erin@example.test" {
		t.Fatalf("erin as a guest: %+v", out)
	}
	if names := strings.Join(cookieNames(t, h), " "); strings.Contains(names, "_device") {
		t.Errorf("a guest's sign-in remembers its browser: %s", names)
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
	if out := w.s.Provider(ctx, http.Header{}, company, vouch(outsider), w.client("192.0.2.20")); refusal(out) == nil || refusal(out).Status != http.StatusForbidden {
		t.Errorf("an identity the guests block does not admit: %+v", out)
	}
	// a config that no longer admits the guest ends its session
	w.s.Guests.Groups = []string{"admins"}
	if opened, _ := w.s.Gate.Open(w.back(t, h), false); opened != nil {
		t.Error("a guest's session opens after the config stopped admitting it")
	}
	w.s.Guests.Groups = nil
	w.s.Required = true
	if out := w.s.Provider(ctx, http.Header{}, company, vouch(erin), w.client("192.0.2.21")); refusal(out) == nil {
		t.Errorf("a guest of one factor with second_factor required: %+v", out)
	}
	company.TrustProviderMFA, erin.MFA = true, true
	if out := w.s.Provider(ctx, http.Header{}, company, vouch(erin), w.client("192.0.2.21")); out.Session == nil || out.Session.Factors != 2 {
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
	out := w.s.Provider(context.Background(), h, &idp.Provider{Name: "company"}, vouch(id), w.client("192.0.2.30"))
	if out.Session == nil || !out.Session.Account.HasGroup("company:staff") {
		t.Fatalf("a guest with many groups: %+v", out)
	}
	if opened, why := w.s.Gate.Open(w.back(t, h), false); opened == nil {
		t.Errorf("the guest's session does not open: %q", why)
	}
}

// TestProviderExchange: the exchange runs only for a client the
// throttle lets in; a code or ID token the provider refuses counts as
// a failed login of the client, a provider that is down does not.
func TestProviderExchange(t *testing.T) {
	w := linkedWorld(t)
	ctx := context.Background()
	company := &idp.Provider{Name: "company"}
	ran := 0
	refused := func(context.Context) (idp.Identity, error) {
		ran++
		return idp.Identity{}, &idp.Error{Status: http.StatusBadRequest, Reason: "refused", Refused: true}
	}
	down := func(context.Context) (idp.Identity, error) {
		ran++
		return idp.Identity{}, &idp.Error{Status: http.StatusBadGateway, Reason: "down"}
	}
	for range loginLimit + 3 {
		if out := w.s.Provider(ctx, http.Header{}, company, down, w.client("192.0.2.40")); out.Err == nil || out.Session != nil {
			t.Fatalf("a provider that is down: %+v", out)
		}
	}
	if w.count.of("login failure") != 0 || ran != loginLimit+3 {
		t.Errorf("a provider that is down counted %v, ran %d times", w.count.counts, ran)
	}
	ran = 0
	for range loginLimit {
		w.s.Provider(ctx, http.Header{}, company, refused, w.client("192.0.2.41"))
	}
	out := w.s.Provider(ctx, http.Header{}, company, refused, w.client("192.0.2.41"))
	if refusal(out) == nil || refusal(out).Status != http.StatusTooManyRequests || ran != loginLimit || w.count.of("login failure") != loginLimit {
		t.Errorf("after %d refused codes: %+v, the exchange ran %d times, counted %v", loginLimit, out, ran, w.count.counts)
	}
}

// TestProviderLinkBound: a session begun through a link is bound to it
// (and keeps it through the code step and a restart): removing or
// changing the link ends it, while the account's password sessions go
// on; the sessions list says via which provider.
func TestProviderLinkBound(t *testing.T) {
	w := linkedWorld(t)
	ctx := context.Background()
	company := &idp.Provider{Name: "company"}
	viaProvider, byPassword, coded := http.Header{}, http.Header{}, http.Header{}
	if out := w.s.Provider(ctx, viaProvider, company, vouch(idp.Identity{Provider: "company", Subject: "sub-1"}), w.client("192.0.2.50")); out.Session == nil ||
		out.Session.Link == nil || out.Session.Link.Subject != "sub-1" {
		t.Fatalf("ada through company: %+v", out)
	}
	if out := w.s.Password(ctx, byPassword, Login{Name: "ada", Password: adaPassword, Client: w.client("192.0.2.50")}); out.Session == nil {
		t.Fatalf("ada's password: %+v", out)
	}
	w.enrol(t, "grace")
	grace := idp.Identity{Provider: "company", Subject: "sub-g", Email: "grace@example.test", EmailVerified: true}
	company.LinkByEmail = true
	pendingHeader := http.Header{}
	if out := w.s.Provider(ctx, pendingHeader, company, vouch(grace), w.client("192.0.2.51")); !out.CodeNeeded {
		t.Fatalf("grace through company: %+v", out)
	}
	pending, acct := w.s.Gate.Pending(ctx, w.back(t, pendingHeader))
	out := w.s.Code(ctx, coded, Login{Code: w.code(t), Client: w.client("192.0.2.51"), Pending: pending, PendingAccount: acct})
	if out.Session == nil || out.Session.Link == nil || out.Session.Link.Provider != "company" {
		t.Fatalf("grace's code step: %+v", out)
	}
	list, _ := w.s.Gate.Shared.Sessions(nil, store.AccountID(acct.ID), [16]byte{})
	if len(list) != 1 || list[0].Via != "company" {
		t.Errorf("grace's sessions list after the code step: %+v", list)
	}
	restarted := http.Header{}
	opened, _ := w.s.Gate.Open(w.back(t, coded), false)
	w.s.Restart(ctx, restarted, opened, w.client("192.0.2.51"), false)
	if again, why := w.s.Gate.Open(w.back(t, restarted), false); again == nil || again.Link == nil || again.Method != session.MethodProvider {
		t.Errorf("grace's restarted session: %+v %q", again, why)
	}

	for _, links := range [][]account.Link{nil, {{Provider: "company", Subject: "sub-9"}}} {
		accounts, err := account.Load([]account.Config{
			{Username: "ada", Password: adaHash, Links: links},
			{Username: "grace", Password: graceHash, Links: []account.Link{{Provider: "company", Subject: "grace@example.test"}}},
		}, "r", caddy.NewReplacer())
		if err != nil {
			t.Fatal(err)
		}
		w.s.Accounts, w.s.Gate.Accounts = accounts, accounts
		if s, _ := w.s.Gate.Open(w.back(t, viaProvider), false); s != nil {
			t.Errorf("a session through a link opens after its link became %v", links)
		}
		if s, why := w.s.Gate.Open(w.back(t, byPassword), false); s == nil {
			t.Errorf("ada's password session ended with her link (%q)", why)
		}
		if s, _ := w.s.Gate.Open(w.back(t, restarted), false); s == nil {
			t.Error("grace's session through her unchanged link ended")
		}
	}
}

// TestProviderStepUp: a user without a password and without a second
// factor is asked to sign in again, never for a password, once the
// sign-in is older than RecentSignIn.
func TestProviderStepUp(t *testing.T) {
	w := linkedWorld(t)
	accounts, err := account.Load([]account.Config{{Username: "lin", Links: []account.Link{{Provider: "company", Subject: "sub-lin"}}}}, "r", caddy.NewReplacer())
	if err != nil {
		t.Fatal(err)
	}
	w.s.Accounts, w.s.Gate.Accounts = accounts, accounts
	out := w.s.Provider(context.Background(), http.Header{}, &idp.Provider{Name: "company"}, vouch(idp.Identity{Provider: "company", Subject: "sub-lin"}),
		w.client("192.0.2.60"))
	if out.Session == nil {
		t.Fatalf("lin through company: %+v", out)
	}
	if k := w.s.StepUpOf(out.Session); k != StepUpNone {
		t.Errorf("a recent sign-in needs %v", k)
	}
	w.clk.Advance(RecentSignIn + time.Second)
	if k := w.s.StepUpOf(out.Session); k != StepUpSignIn {
		t.Errorf("an older sign-in of a user without a password needs %v", k)
	}
	err = w.s.AllowChange(context.Background(), out.Session, true, Proof{Password: "anything"}, w.client("192.0.2.60"))
	if r, ok := err.(*Refusal); !ok || r.Status != http.StatusForbidden || !strings.Contains(r.Reason, "sign in again") {
		t.Errorf("a change of an older sign-in: %v", err)
	}
	if got := string(StepUpSignIn.AppendField(nil, "x")); strings.Contains(got, "<input") || !strings.Contains(got, "sign in again") {
		t.Errorf("the step-up's field: %s", got)
	}
}
