package account

import (
	"crypto/sha256"
	"strings"
)

// Link ties an identity at a provider to an account: the provider's
// name and the identity's stable ID there (OpenID Connect's sub, or
// GitHub's numeric user ID), or an e-mail address where the provider's
// block allows linking by it.
type Link struct {
	Provider string `json:"provider"`
	Subject  string `json:"subject"`
}

// IsEmail reports whether the link is by e-mail address.
func (l Link) IsEmail() bool { return strings.Contains(l.Subject, "@") }

// key is the link as the set indexes it: an ID as it is, an e-mail
// address in lower case (as providers compare them) and apart, so that
// an ID that looks like an address never matches an e-mail link.
func (l Link) key() Link {
	if l.IsEmail() {
		l.Subject = "email\x00" + asciiLower(l.Subject)
	}
	return l
}

// asciiLower is s with its ASCII letters in lower case: addresses are
// compared so, and any other letter exactly (Unicode's lower case would
// make the Kelvin sign a k).
func asciiLower(s string) string {
	return strings.Map(func(r rune) rune {
		if 'A' <= r && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return r
	}, s)
}

// Linked is the account linked to an identity's stable ID at a
// provider.
func (s *Set) Linked(provider, id string) (*Account, bool) {
	if strings.Contains(id, "@") {
		id = "id\x00" + id // never an e-mail link
	}
	acct, ok := s.links[Link{provider, id}]
	return acct, ok
}

// LinkedByEmail is the account linked to an e-mail address (in any
// case) at a provider, which the caller may use only where the provider
// vouches for the address and its block allows linking by it.
func (s *Set) LinkedByEmail(provider, email string) (*Account, bool) {
	acct, ok := s.links[Link{provider, "email\x00" + asciiLower(email)}]
	return acct, ok
}

// LinkTag is the tag of a session begun through the link: bound to the
// account and to the link, so that such a session ends when its link is
// removed or changed, and the account's other sessions do not.
func (a *Account) LinkTag(l Link) Tag {
	k := l.key()
	sum := sha256.Sum256([]byte("miniapp link v1\x00" + string(a.ID[:]) + "\x00" + k.Provider + "\x00" + k.Subject))
	return Tag(sum[:TagLen])
}

// LinkOf is the account's link that a session's tag is bound to, if
// it still has it.
func (a *Account) LinkOf(tag Tag) (Link, bool) {
	for _, l := range a.Links {
		if a.LinkTag(l) == tag {
			return l, true
		}
	}
	return Link{}, false
}
