package admin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/caddy-miniapp/miniapp/internal/gate"
	"github.com/caddy-miniapp/miniapp/internal/passkey"
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
)

// Command is `caddy miniapp`, for caddycmd.RegisterCommand.
func Command() caddycmd.Command {
	return caddycmd.Command{
		Name:  "miniapp",
		Usage: "sessions <user> | revoke <session-id> | signout <user> | totp-reset <user> | passkeys <user> | passkey-delete <id> | passkeys-reset <user> | oidc-grants <user> | oidc-revoke <user> | oidc-rotate-key | user add|list|set|remove|reset [--address <admin>] [--realm <realm>]",
		Short: "Lists and ends miniapp sessions through the admin API",
		Long: `
Lists and ends the sessions of miniapp users on a running Caddy, through
its admin API (the module admin.api.miniapp), as caddy reload does:

  caddy miniapp sessions <user>        a table of the user's sessions
  caddy miniapp revoke <session-id>    ends one session
  caddy miniapp signout <user>         ends every session of the user
  caddy miniapp totp-reset <user>      removes the user's second factor
                                       (a lost phone) and ends every
                                       session of the user
  caddy miniapp passkeys <user>        a table of the user's passkeys
  caddy miniapp passkey-delete <id>    removes a passkey and ends the
                                       sessions it started
  caddy miniapp passkeys-reset <user>  removes all of the user's passkeys
                                       (a record that no longer opens)
                                       and ends every session of the user
  caddy miniapp oidc-grants <user>     a table of the apps holding a
                                       refresh token of the user
  caddy miniapp oidc-revoke <user>     ends those grants and their tokens
  caddy miniapp oidc-rotate-key        publishes a new signing key of the
                                       OpenID Connect provider, which
                                       signs an hour later
  caddy miniapp user add <name>        makes an account in the realm's
                                       store and prints its invite link
                                       (--groups a,b --email --name
                                       --valid 7d --site https://...)
  caddy miniapp user list              a table of the managed accounts
  caddy miniapp user set <name>        changes --groups, --email, --name
  caddy miniapp user remove <name>     removes the account; its sessions,
                                       second factor and passkeys end
  caddy miniapp user reset <name>      ends its password and sessions and
                                       prints a link to set a new one

--address is the admin API's address (default localhost:2019, or the one
in --config); --realm the handler's realm (default miniapp). The exit
status is 0 on success, and 1 with a one-line reason otherwise.`,
		CobraFunc: func(cmd *cobra.Command) {
			cmd.PersistentFlags().String("address", "", "The address of Caddy's admin API")
			cmd.PersistentFlags().StringP("config", "c", "", "Configuration file, to find the admin API's address")
			cmd.PersistentFlags().StringP("adapter", "a", "", "Name of config adapter to apply")
			cmd.PersistentFlags().String("realm", "", "The realm of the miniapp handler (default miniapp)")
			cmd.RunE = func(_ *cobra.Command, args []string) error {
				if len(args) == 0 {
					return errors.New("a command is required: sessions, revoke, signout, totp-reset, passkeys, passkey-delete, passkeys-reset, oidc-grants, oidc-revoke, oidc-rotate-key or user")
				}
				return fmt.Errorf("unknown command %q: want sessions, revoke, signout, totp-reset, passkeys, passkey-delete, passkeys-reset, oidc-grants, oidc-revoke, oidc-rotate-key or user", args[0])
			}
			cmd.AddCommand(
				miniappCommand("sessions <user>", "Lists a user's sessions", listSessionsCommand),
				miniappCommand("revoke <session-id>", "Ends one session", revokeCommand),
				miniappCommand("signout <user>", "Ends every session of a user", signOutCommand),
				miniappCommand("totp-reset <user>", "Removes a user's second factor and ends every session of the user", totpResetCommand),
				miniappCommand("passkeys <user>", "Lists a user's passkeys", listPasskeysCommand),
				miniappCommand("passkey-delete <id>", "Removes a passkey and ends the sessions it started", deletePasskeyCommand),
				miniappCommand("passkeys-reset <user>", "Removes all of a user's passkeys and ends every session of the user", passkeysResetCommand),
				miniappCommand("oidc-grants <user>", "Lists the apps holding a refresh token of a user", listGrantsCommand),
				miniappCommand("oidc-revoke <user>", "Revokes the OpenID Connect grants of a user", revokeGrantsCommand),
				rotateKeyCommand(),
				userCommand(),
			)
		},
	}
}

// miniappCommand is a subcommand of `caddy miniapp` that takes one
// argument and prints to the command's output.
func miniappCommand(use, short string, run func(admin adminClient, arg string, out io.Writer) error) *cobra.Command {
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			admin, err := newAdminClient(cmd)
			if err != nil {
				return err
			}
			return run(admin, args[0], cmd.OutOrStdout())
		},
	}
}

// adminClient sends requests to the admin API's miniapp endpoints.
type adminClient struct {
	address string
	realm   string
}

// newAdminClient reads the flags that name the admin API and the realm.
func newAdminClient(cmd *cobra.Command) (adminClient, error) {
	flags := cmd.Flags()
	address, _ := flags.GetString("address")
	config, _ := flags.GetString("config")
	adapter, _ := flags.GetString("adapter")
	realm, _ := flags.GetString("realm")
	address, err := adminAddress(address, config, adapter)
	return adminClient{address: address, realm: realm}, err
}

// adminAddress is the admin API's address: --address, else the one in
// --config, else the one in a Caddyfile in the current folder (as caddy
// reload finds it), else Caddy's default. The config is adapted here, so
// that none of Caddy's log lines reach the command's output.
func adminAddress(address, config, adapter string) (string, error) {
	if address != "" {
		return address, nil
	}
	file := config
	if file == "" {
		file = "Caddyfile"
	}
	body, err := os.ReadFile(file)
	if config == "" && errors.Is(err, fs.ErrNotExist) {
		return caddy.DefaultAdminListen, nil
	}
	if err != nil {
		return "", fmt.Errorf("reading the config for the admin API's address: %v", err)
	}
	base := strings.ToLower(filepath.Base(file))
	if adapter == "" && (strings.HasPrefix(base, "caddyfile") || strings.HasSuffix(base, ".caddyfile")) {
		adapter = "caddyfile"
	}
	if adapter != "" {
		adapt := caddyconfig.GetAdapter(adapter)
		if adapt == nil {
			return "", fmt.Errorf("unknown config adapter %q", adapter)
		}
		if body, _, err = adapt.Adapt(body, map[string]any{"filename": file}); err != nil {
			return "", fmt.Errorf("adapting %s for the admin API's address: %v", file, err)
		}
	}
	return caddycmd.DetermineAdminAPIAddress("", body, file, "")
}

// do sends a request to path with the query (plus the realm), and decodes
// the JSON answer into v. An error answer becomes its one-line message.
func (c adminClient) do(method, path string, query url.Values, v any) error {
	return c.send(method, path, query, nil, v)
}

// send is do with a JSON body (nil: none).
func (c adminClient) send(method, path string, query url.Values, body, v any) error {
	if c.realm != "" {
		query.Set("realm", c.realm)
	}
	uri := path
	if len(query) > 0 {
		uri += "?" + query.Encode()
	}
	var header http.Header
	var reader io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return err
		}
		header, reader = http.Header{"Content-Type": {"application/json"}}, bytes.NewReader(data)
	}
	resp, err := caddycmd.AdminAPIRequest(c.address, method, uri, header, reader)
	if err != nil {
		// the admin API's error is JSON on the message's last line
		msg := strings.TrimSpace(err.Error())
		if _, body, ok := strings.Cut(msg, ": {"); ok {
			var apiErr struct {
				Error string `json:"error"`
			}
			if json.Unmarshal([]byte("{"+body), &apiErr) == nil && apiErr.Error != "" {
				return errors.New(apiErr.Error)
			}
		}
		return errors.New(msg)
	}
	defer func() { _ = resp.Body.Close() }()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("reading the admin API's answer: %v", err)
	}
	return nil
}

// listSessionsCommand prints a table of the user's sessions.
func listSessionsCommand(admin adminClient, user string, out io.Writer) error {
	var list []gate.View
	if err := admin.do(http.MethodGet, "/miniapp/sessions", url.Values{"user": {user}}, &list); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	// a tabwriter's errors come with Flush
	_, _ = fmt.Fprintln(tw, "ID\tACCOUNT\tDEVICE\tADDRESS\tFACTORS\tSTARTED\tEXPIRES")
	for _, s := range list {
		_, _ = fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", printable(s.ID), printable(s.Account), printable(s.Device), printable(s.Address),
			s.Factors, s.Started.Format(time.RFC3339), s.Expires.Format(time.RFC3339))
	}
	return tw.Flush()
}

// revokeCommand ends one session.
func revokeCommand(admin adminClient, id string, out io.Writer) error {
	var ended gate.View
	if err := admin.do(http.MethodDelete, "/miniapp/sessions/"+url.PathEscape(id), url.Values{}, &ended); err != nil {
		return err
	}
	_, err := fmt.Fprintf(out, "ended session %s (%s, %s)\n", printable(ended.ID), printable(ended.Device), printable(ended.Address))
	return err
}

// signOutCommand ends every session of the user.
func signOutCommand(admin adminClient, user string, out io.Writer) error {
	var result SignOut
	if err := admin.do(http.MethodPost, "/miniapp/signout", url.Values{"user": {user}}, &result); err != nil {
		return err
	}
	_, err := fmt.Fprintf(out, "signed %s out everywhere (sessions ended: %d, accounts: %d)\n", printable(result.User), result.Ended, result.Accounts)
	return err
}

// totpResetCommand removes the user's second factor and ends the user's
// sessions.
func totpResetCommand(admin adminClient, user string, out io.Writer) error {
	var result RecordReset
	if err := admin.do(http.MethodDelete, "/miniapp/totp", url.Values{"user": {user}}, &result); err != nil {
		return err
	}
	if !result.Removed {
		_, err := fmt.Fprintf(out, "%s had no second factor; sessions ended: %d\n", printable(result.User), result.Ended)
		return err
	}
	_, err := fmt.Fprintf(out, "removed the second factor of %s; sessions ended: %d\n", printable(result.User), result.Ended)
	return err
}

// listPasskeysCommand prints a table of the user's passkeys.
func listPasskeysCommand(admin adminClient, user string, out io.Writer) error {
	var keys []passkey.View
	if err := admin.do(http.MethodGet, "/miniapp/passkeys", url.Values{"user": {user}}, &keys); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	// a tabwriter's errors come with Flush
	_, _ = fmt.Fprintln(tw, "ID\tNAME\tCREATED\tLAST USED")
	for _, k := range keys {
		used := "never"
		if k.LastUsed != nil {
			used = k.LastUsed.Format(time.RFC3339)
		}
		_, _ = fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", printable(k.ID), printable(k.Name), k.Created.Format(time.RFC3339), used)
	}
	return tw.Flush()
}

// deletePasskeyCommand removes a passkey.
func deletePasskeyCommand(admin adminClient, id string, out io.Writer) error {
	var result PasskeyDeleted
	if err := admin.do(http.MethodDelete, "/miniapp/passkeys/"+url.PathEscape(id), url.Values{}, &result); err != nil {
		return err
	}
	_, err := fmt.Fprintf(out, "removed passkey %s (%s) of %s\n", printable(result.Passkey.ID), printable(result.Passkey.Name), printable(result.User))
	return err
}

// passkeysResetCommand removes all of a user's passkeys.
func passkeysResetCommand(admin adminClient, user string, out io.Writer) error {
	var result RecordReset
	if err := admin.do(http.MethodDelete, "/miniapp/passkeys", url.Values{"user": {user}}, &result); err != nil {
		return err
	}
	if !result.Removed {
		_, err := fmt.Fprintf(out, "%s had no passkeys; sessions ended: %d\n", printable(result.User), result.Ended)
		return err
	}
	_, err := fmt.Fprintf(out, "removed the passkeys of %s; sessions ended: %d\n", printable(result.User), result.Ended)
	return err
}

// printable is s as a terminal may show it: quoted and escaped when it
// holds anything but graphic characters, so what an admin API answers
// can never move the cursor, clear the screen or hide a line.
func printable(s string) string {
	if strings.IndexFunc(s, func(r rune) bool { return !unicode.IsGraphic(r) || r == '\t' }) < 0 {
		return s
	}
	return strconv.QuoteToASCII(s)
}
