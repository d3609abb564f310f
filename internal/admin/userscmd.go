package admin

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

// userCommand is `caddy miniapp user`: the accounts managed in the
// realm's store.
func userCommand() *cobra.Command {
	user := &cobra.Command{Use: "user add|list|set|remove|reset", Short: "Manages the accounts kept in the realm's store"}
	profile := func(c *cobra.Command) {
		c.Flags().String("groups", "", "The user's groups, comma-separated")
		c.Flags().String("email", "", "The user's e-mail address")
		c.Flags().String("name", "", "The user's display name")
	}
	link := func(c *cobra.Command) {
		c.Flags().String("valid", "", "How long the link works (default 7d)")
		c.Flags().String("site", "", "The site whose /login/invite the link names, where the handler has no absolute login_url")
	}
	add := userSubcommand("add <name>", "Makes an account and prints its one-time invite link", 1, func(c *cobra.Command, admin adminClient, args []string, out io.Writer) error {
		in := NewUser{Name: args[0], Groups: splitGroups(flag(c, "groups")), Email: flag(c, "email"), DisplayName: flag(c, "name"),
			Valid: flag(c, "valid"), Site: flag(c, "site")}
		var invite Invite
		if err := admin.send(http.MethodPost, "/miniapp/users", url.Values{}, in, &invite); err != nil {
			return err
		}
		_, err := fmt.Fprintf(out, "made %s; hand over this link, which works once:\n%s\n", printable(invite.Name), printable(invite.Link))
		return err
	})
	profile(add)
	link(add)
	set := userSubcommand("set <name>", "Changes what describes an account", 1, func(c *cobra.Command, admin adminClient, args []string, out io.Writer) error {
		var change UserChange
		if c.Flags().Changed("groups") {
			groups := splitGroups(flag(c, "groups"))
			change.Groups = &groups
		}
		if c.Flags().Changed("email") {
			email := flag(c, "email")
			change.Email = &email
		}
		if c.Flags().Changed("name") {
			name := flag(c, "name")
			change.DisplayName = &name
		}
		var u User
		if err := admin.send(http.MethodPatch, "/miniapp/users/"+url.PathEscape(args[0]), url.Values{}, change, &u); err != nil {
			return err
		}
		_, err := fmt.Fprintf(out, "changed %s (groups %s)\n", printable(u.Name), printable(strings.Join(u.Groups, ",")))
		return err
	})
	profile(set)
	reset := userSubcommand("reset <name>", "Ends an account's password and sessions and prints a link to set a new one", 1, func(c *cobra.Command, admin adminClient, args []string, out io.Writer) error {
		var invite Invite
		if err := admin.send(http.MethodPost, "/miniapp/users/"+url.PathEscape(args[0])+"/reset", url.Values{}, NewUser{Valid: flag(c, "valid"), Site: flag(c, "site")}, &invite); err != nil {
			return err
		}
		_, err := fmt.Fprintf(out, "reset %s; hand over this link, which works once:\n%s\n", printable(args[0]), printable(invite.Link))
		return err
	})
	link(reset)
	user.AddCommand(add, set, reset,
		userSubcommand("list", "Lists the managed accounts", 0, func(_ *cobra.Command, admin adminClient, _ []string, out io.Writer) error {
			var list []User
			if err := admin.do(http.MethodGet, "/miniapp/users", url.Values{}, &list); err != nil {
				return err
			}
			tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
			// a tabwriter's errors come with Flush
			_, _ = fmt.Fprintln(tw, "NAME\tGROUPS\tEMAIL\tCREATED\tLAST SIGN-IN\tFACTORS\tPASSWORD")
			for _, u := range list {
				last := "never"
				if u.LastSignIn != nil {
					last = u.LastSignIn.Format(time.RFC3339)
				}
				password := "set"
				if !u.Password {
					password = "invited"
				}
				_, _ = fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", printable(u.Name), printable(strings.Join(u.Groups, ",")), printable(u.Email),
					u.Created.Format(time.RFC3339), last, strings.Join(u.Factors, ","), password)
			}
			return tw.Flush()
		}),
		userSubcommand("remove <name>", "Removes an account; its sessions, second factor and passkeys end", 1, func(_ *cobra.Command, admin adminClient, args []string, out io.Writer) error {
			var removed UserRemoved
			if err := admin.do(http.MethodDelete, "/miniapp/users/"+url.PathEscape(args[0]), url.Values{}, &removed); err != nil {
				return err
			}
			_, err := fmt.Fprintf(out, "removed %s; sessions ended: %d\n", printable(removed.User), removed.Ended)
			return err
		}),
	)
	return user
}

// userSubcommand is a subcommand of `caddy miniapp user` that takes n
// arguments.
func userSubcommand(use, short string, n int, run func(c *cobra.Command, admin adminClient, args []string, out io.Writer) error) *cobra.Command {
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ExactArgs(n),
		RunE: func(cmd *cobra.Command, args []string) error {
			admin, err := newAdminClient(cmd)
			if err != nil {
				return err
			}
			return run(cmd, admin, args, cmd.OutOrStdout())
		},
	}
}

// flag is a string flag's value.
func flag(c *cobra.Command, name string) string {
	v, _ := c.Flags().GetString(name)
	return v
}

// splitGroups reads a comma-separated list of groups.
func splitGroups(s string) []string {
	out := []string{} // none: `--groups ""` clears them
	for g := range strings.SplitSeq(s, ",") {
		if g = strings.TrimSpace(g); g != "" {
			out = append(out, g)
		}
	}
	return out
}
