package account

import "testing"

// TestLinks: an identity finds its account by provider and ID, an
// e-mail address in any case; a user without a password never passes a
// password check, which costs the fake hash's comparison; a set of such
// users alone loads.
func TestLinks(t *testing.T) {
	set := load(t, Config{Username: "ada", Password: adaHash, Links: []Link{{"github", "1234567"}}},
		Config{Username: "grace", Links: []Link{{"company", "Grace@Example.test"}, {"company", "sub-9"}}})
	if acct, ok := set.LinkedByEmail("company", "grace@example.TEST"); !ok || acct.Name != "grace" {
		t.Errorf("grace by her address in another case: %v", acct)
	}
	if _, ok := set.Linked("company", "grace@example.test"); ok {
		t.Error("an ID that looks like an address matched an e-mail link")
	}
	// only ASCII letters compare in any case: Unicode's lower case of
	// the Kelvin sign is a k
	kate := load(t, Config{Username: "kate", Links: []Link{{"company", "kate@example.test"}}})
	if _, ok := kate.LinkedByEmail("company", "\u212Aate@example.test"); ok {
		t.Error("an address with the Kelvin sign matched kate's")
	}
	// a link's tag is its account's and its own
	grace, _ := set.Lookup("grace")
	tag := grace.LinkTag(Link{"company", "sub-9"})
	if l, ok := grace.LinkOf(tag); !ok || l.Subject != "sub-9" || tag == grace.ID.Tag() || tag == grace.LinkTag(Link{"company", "sub-8"}) {
		t.Errorf("the tag of grace's link: %v %v", l, ok)
	}
	if l, ok := grace.LinkOf(grace.LinkTag(Link{"company", "GRACE@example.test"})); !ok || l.Subject != "Grace@Example.test" {
		t.Errorf("the tag of grace's e-mail link in another case: %v %v", l, ok)
	}
	if _, ok := grace.LinkOf(grace.ID.Tag()); ok {
		t.Error("the account's own tag names a link")
	}
	for _, tc := range []struct{ provider, subject, want string }{
		{"github", "1234567", "ada"}, {"company", "sub-9", "grace"},
		{"company", "1234567", ""}, {"github", "12345678", ""}, {"company", "SUB-9", ""},
	} {
		acct, ok := set.Linked(tc.provider, tc.subject)
		if got := ""; ok {
			got = acct.Name
			if got != tc.want {
				t.Errorf("%s %s: %q, want %q", tc.provider, tc.subject, got, tc.want)
			}
		} else if tc.want != "" {
			t.Errorf("%s %s: none, want %q", tc.provider, tc.subject, tc.want)
		}
	}
	stub := &recordingComparer{}
	set.fake.Comparer = stub
	grace, _ = set.Lookup("grace")
	if acct, reason, _ := set.Check("grace", ""); acct != nil || reason != reasonNoPassword || len(stub.hashes) != 1 || grace.HasPassword() {
		t.Errorf("a password check of a user without one: %v %q, compared %d", acct, reason, len(stub.hashes))
	}
	only := load(t, Config{Username: "grace", Links: []Link{{"github", "1"}}})
	if _, reason, err := only.Check("grace", "x"); err != nil || reason != reasonNoPassword {
		t.Errorf("a realm of users without passwords: %q %v", reason, err)
	}
}
