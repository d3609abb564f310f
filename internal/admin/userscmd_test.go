package admin

import (
	"slices"
	"testing"
)

func TestSplitGroups(t *testing.T) {
	if got := splitGroups(""); got == nil || len(got) != 0 {
		t.Errorf(`splitGroups("") = %#v, want an empty list that clears the groups`, got)
	}
	if got := splitGroups(" staff, admins ,,"); !slices.Equal(got, []string{"staff", "admins"}) {
		t.Errorf("splitGroups = %q, want staff and admins", got)
	}
}

func TestUserCommand(t *testing.T) {
	user := userCommand()
	args := map[string]int{"add": 1, "list": 0, "set": 1, "remove": 1, "reset": 1}
	for _, c := range user.Commands() {
		n, ok := args[c.Name()]
		if !ok {
			t.Errorf("an unexpected subcommand %q", c.Name())
			continue
		}
		delete(args, c.Name())
		if c.Args(c, make([]string, n)) != nil || c.Args(c, make([]string, n+1)) == nil {
			t.Errorf("%s: does not take exactly %d arguments", c.Name(), n)
		}
	}
	if len(args) != 0 {
		t.Errorf("missing subcommands: %v", args)
	}
	add, _, err := user.Find([]string{"add"})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"groups", "email", "name", "valid", "site"} {
		if add.Flags().Lookup(f) == nil {
			t.Errorf("user add has no --%s", f)
		}
	}
}
