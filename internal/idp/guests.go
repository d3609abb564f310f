package idp

import (
	"fmt"
	"slices"
	"strings"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// Guests is who may sign in through a provider without an account here
// (a `guests` block): every condition given must hold. A guest's
// session is of the user <provider>:<id>, with the groups GiveGroups
// gives and the provider's groups prefixed with its name.
type Guests struct {
	// The providers whose identities may sign in as guests. Required.
	From []string `json:"from"`

	// Only members of one of these groups at the provider (its
	// `groups_claim`): a group's name there, or `<provider>:<group>`,
	// which `from` with several providers needs (a group's name means
	// nothing across providers). Default: any.
	Groups []string `json:"groups,omitempty"`

	// Only users whose e-mail address, which the provider says it
	// verified, is at one of these domains. Default: any.
	EmailDomains []string `json:"email_domains,omitempty"`

	// The groups a guest's session carries here, before the provider's
	// own (`company:staff`), so that a provider never gives a local
	// group by its name.
	GiveGroups []string `json:"give_groups,omitempty"`
}

// ParseGuests reads a `guests` block:
//
//	guests {
//	    from <provider...>
//	    groups <group...>
//	    email_domains <domain...>
//	    give_groups <group...>
//	}
func ParseGuests(d *caddyfile.Dispenser) (*Guests, error) {
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	g := new(Guests)
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		sub := d.Val()
		if seen[sub] {
			return nil, d.Errf("guests: duplicate subdirective %s", sub)
		}
		seen[sub] = true
		var dst *[]string
		switch sub {
		case "from":
			dst = &g.From
		case "groups":
			dst = &g.Groups
		case "email_domains":
			dst = &g.EmailDomains
		case "give_groups":
			dst = &g.GiveGroups
		default:
			return nil, d.Errf("guests: unknown subdirective %s", sub)
		}
		if *dst = d.RemainingArgs(); len(*dst) == 0 {
			return nil, d.ArgErr()
		}
	}
	return g, nil
}

// Validate checks the block against the providers.
func (g *Guests) Validate(providers []Provider) error {
	if len(g.From) == 0 {
		return fmt.Errorf("guests: from names the providers whose users may sign in as guests")
	}
	for _, name := range g.From {
		i := slices.IndexFunc(providers, func(p Provider) bool { return p.Name == name })
		switch {
		case i < 0:
			return fmt.Errorf("guests: from %s: no such provider (a sign_in_with block names it)", name)
		case len(g.Groups) > 0 && providers[i].GroupsClaim == "":
			return fmt.Errorf("guests: groups needs groups_claim in sign_in_with %s, which gives no groups", name)
		}
	}
	for _, group := range g.Groups {
		if provider, _, _ := strings.Cut(group, ":"); len(g.From) > 1 && !slices.Contains(g.From, provider) {
			return fmt.Errorf("guests: groups %q: with several providers in from, name each group with one of them (%s:%s)", group, g.From[0], group)
		}
	}
	for _, group := range g.GiveGroups {
		if len(group) > maxGroupLen || !plain(group) || strings.ContainsAny(group, ", ") {
			return fmt.Errorf("guests: give_groups %q must be 1 to %d characters without commas, spaces or control characters", group, maxGroupLen)
		}
	}
	for _, domain := range g.EmailDomains {
		if domain == "" || strings.ContainsAny(domain, "@ ,") || !plain(domain) {
			return fmt.Errorf("guests: email_domains %q is not a domain", domain)
		}
	}
	return nil
}

// Admits reports whether the identity may sign in as a guest: from one
// of the providers, in one of the groups, with a verified address at
// one of the domains, as far as each is asked.
func (g *Guests) Admits(id Identity) bool {
	if g == nil || !slices.Contains(g.From, id.Provider) {
		return false
	}
	if len(g.Groups) > 0 && !slices.ContainsFunc(id.Groups, func(group string) bool { return g.Asks(id.Provider, group) }) {
		return false
	}
	if len(g.EmailDomains) > 0 {
		_, domain, _ := strings.Cut(id.Email, "@")
		return id.EmailVerified && slices.ContainsFunc(g.EmailDomains, func(d string) bool { return strings.EqualFold(d, domain) })
	}
	return true
}

// Asks reports whether the block's groups name the provider's group:
// as <provider>:<group> (a group of another provider never, whatever
// its name there), or by its name alone where from has one provider.
func (g *Guests) Asks(provider, group string) bool {
	return slices.ContainsFunc(g.Groups, func(entry string) bool {
		if from, name, ok := strings.Cut(entry, ":"); ok && slices.Contains(g.From, from) {
			return from == provider && name == group
		}
		return len(g.From) == 1 && entry == group
	})
}

// GroupsOf are a guest's groups here: GiveGroups, then the provider's
// groups prefixed with its name.
func (g *Guests) GroupsOf(provider string, groups []string) []string {
	out := slices.Clone(g.GiveGroups)
	for _, group := range groups {
		out = append(out, provider+":"+group)
	}
	return out
}
