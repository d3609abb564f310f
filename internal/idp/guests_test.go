package idp

import (
	"slices"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// TestGuests: every condition of the block must hold (provider, a
// provider group, a verified address at a domain), and a guest's groups
// are the given ones, then the provider's prefixed with its name.
func TestGuests(t *testing.T) {
	d := caddyfile.NewTestDispenser(`guests {
		from company github
		groups staff ops
		email_domains Example.com
		give_groups readers
	}`)
	d.Next()
	g, err := ParseGuests(d)
	if err != nil {
		t.Fatal(err)
	}
	providers := []Provider{{Name: "company", GroupsClaim: "groups"}, {Name: GitHub}}
	if err := g.Validate(providers); err == nil || !strings.Contains(err.Error(), "groups_claim in sign_in_with github") {
		t.Errorf("groups of a provider without groups: %v", err)
	}
	g.From = []string{"company"}
	if err := g.Validate(providers); err != nil {
		t.Fatal(err)
	}
	ok := Identity{Provider: "company", Subject: "s", Groups: []string{"x", "ops"}, Email: "a@example.COM", EmailVerified: true}
	if !g.Admits(ok) {
		t.Errorf("refused %+v", ok)
	}
	for name, edit := range map[string]func(*Identity){
		"another provider":   func(id *Identity) { id.Provider = "github" },
		"no group":           func(id *Identity) { id.Groups = []string{"x"} },
		"unverified address": func(id *Identity) { id.EmailVerified = false },
		"another domain":     func(id *Identity) { id.Email = "a@example.com.evil" },
		"a subdomain":        func(id *Identity) { id.Email = "a@mail.example.com" },
	} {
		id := ok
		id.Groups = slices.Clone(ok.Groups)
		edit(&id)
		if g.Admits(id) {
			t.Errorf("%s admitted", name)
		}
	}
	two := &Guests{From: []string{"company", "partner"}, Groups: []string{"staff"}}
	providers = append(providers, Provider{Name: "partner", GroupsClaim: "groups"})
	if err := two.Validate(providers); err == nil {
		t.Error("an unqualified group with two providers accepted")
	}
	two.Groups = []string{"company:staff"}
	if err := two.Validate(providers); err != nil {
		t.Fatal(err)
	}
	if two.Admits(Identity{Provider: "partner", Groups: []string{"staff"}}) || !two.Admits(Identity{Provider: "company", Groups: []string{"staff"}}) {
		t.Error("company:staff admits by the group's name at another provider")
	}
	// a partner group named company:staff is partner's, not company's
	if two.Admits(Identity{Provider: "partner", Groups: []string{"company:staff"}}) {
		t.Error("a group of another provider named company:staff admitted")
	}
	two.Groups = []string{"gitlab:staff"}
	if err := two.Validate(providers); err == nil {
		t.Error("a group of a provider not in from accepted")
	}
	if groups := g.GroupsOf("company", []string{"ops"}); !slices.Equal(groups, []string{"readers", "company:ops"}) {
		t.Errorf("groups %v", groups)
	}
	var none *Guests
	if none.Admits(ok) {
		t.Error("no guests block admitted a guest")
	}
	for name, bad := range map[string]*Guests{
		"no from":          {},
		"unknown provider": {From: []string{"gitlab"}},
		"give_groups x,y":  {From: []string{"company"}, GiveGroups: []string{"x,y"}},
		"a domain with @":  {From: []string{"company"}, EmailDomains: []string{"@example.com"}},
	} {
		if bad.Validate(providers) == nil {
			t.Errorf("%s accepted", name)
		}
	}
}
