package admin

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/account"
	"github.com/caddy-miniapp/miniapp/internal/oidc"
	"github.com/spf13/cobra"
	"go.uber.org/zap"
)

// The endpoints of the OpenID Connect provider: the apps holding a
// user's refresh tokens, revoked by an operator, and the signing key's
// rotation.

// OpenID is what the admin API needs of a realm's OpenID Connect
// provider.
type OpenID interface {
	// Grants are the user's live offline grants.
	Grants(user string) ([]oidc.GrantInfo, error)
	// RevokeGrant ends one of them.
	RevokeGrant(ctx context.Context, user string, grant []byte) error
	// Rotate publishes a new signing key and names it.
	Rotate(ctx context.Context) (string, error)
	// LoggedOut tells the apps of the user's session (nil: of every
	// session) that it ended.
	LoggedOut(user string, session []byte)
	// LoggedOutAccount tells the apps of every session of the account
	// that it ended, by the account's own record.
	LoggedOutAccount(acct *account.Account)
}

// loggedOut tells the realm's provider, if any, that a session of the
// user ended (nil: every session).
func loggedOut(nodes []*Node, user string, session []byte) {
	if n, err := providerOf(nodes); err == nil {
		n.OpenID.LoggedOut(user, session)
	}
}

// loggedOutAccount tells the realm's provider, if any, that every
// session of the account ended.
func loggedOutAccount(r *http.Request, acct *account.Account) {
	nodes, _ := nodesOf(r)
	if n, err := providerOf(nodes); err == nil {
		n.OpenID.LoggedOutAccount(acct)
	}
}

// GrantsRevoked is the answer of DELETE /miniapp/oidc/grants.
type GrantsRevoked struct {
	// User is the user whose grants were revoked.
	User string `json:"user"`
	// Revoked is how many grants ended.
	Revoked int `json:"revoked"`
}

// KeyRotated is the answer of POST /miniapp/oidc/keys.
type KeyRotated struct {
	// KID is the new key's ID; it signs from SignsFrom, until when the
	// current key signs and both are listed.
	KID       string    `json:"kid"`
	SignsFrom time.Time `json:"signs_from"`
}

// providerOf is the OpenID Connect provider of the nodes' realm, or a
// 404.
func providerOf(nodes []*Node) (*Node, error) {
	i := slices.IndexFunc(nodes, func(n *Node) bool { return n.OpenID != nil })
	if i < 0 {
		return nil, apiError(http.StatusNotFound, errors.New("the realm is not an OpenID Connect provider (no oidc in its config)"))
	}
	return nodes[i], nil
}

// grants lists (GET) or revokes (DELETE; with client=, only that app's)
// a user's offline grants: the apps holding a refresh token.
func grants(w http.ResponseWriter, r *http.Request) error {
	name, accounts, err := recordOf(w, r)
	if err != nil {
		return err
	}
	nodes := make([]*Node, len(accounts))
	for i, u := range accounts {
		nodes[i] = u.n
	}
	n, err := providerOf(nodes)
	if err != nil {
		return err
	}
	list, err := n.OpenID.Grants(name)
	if err != nil {
		return apiError(http.StatusConflict, errors.New("the user's grants record does not open (edited in the store, or sealed with a key no longer configured)"))
	}
	if client := r.URL.Query().Get("client"); client != "" {
		list = slices.DeleteFunc(list, func(g oidc.GrantInfo) bool { return g.Client != client })
	}
	if r.Method == http.MethodGet {
		return writeJSON(w, list)
	}
	for _, g := range list {
		id, _ := hex.DecodeString(g.ID)
		if err := n.OpenID.RevokeGrant(r.Context(), name, id); err != nil {
			return apiError(http.StatusServiceUnavailable, errors.New("the store did not answer; try again"))
		}
	}
	n.Logger.Info("OpenID Connect grants revoked", zap.String("user", name), zap.Int("grants", len(list)),
		zap.String("by", "admin API"), zap.String("remote_addr", r.RemoteAddr))
	return writeJSON(w, GrantsRevoked{User: name, Revoked: len(list)})
}

// rotateKey publishes a new signing key for the realm's provider.
func rotateKey(w http.ResponseWriter, r *http.Request) error {
	if err := allow(w, r, http.MethodPost); err != nil {
		return err
	}
	nodes, err := nodesOf(r)
	if err != nil {
		return err
	}
	n, err := providerOf(nodes)
	if err != nil {
		return err
	}
	kid, err := n.OpenID.Rotate(r.Context())
	if err != nil {
		return apiError(http.StatusServiceUnavailable, errors.New("the store did not answer; try again"))
	}
	n.Logger.Info("OpenID Connect signing key rotated", zap.String("kid", kid), zap.String("by", "admin API"),
		zap.String("remote_addr", r.RemoteAddr))
	return writeJSON(w, KeyRotated{KID: kid, SignsFrom: time.Now().Add(oidc.PublishAhead).Truncate(time.Second)})
}

// listGrantsCommand prints a table of the user's grants.
func listGrantsCommand(admin adminClient, user string, out io.Writer) error {
	var list []oidc.GrantInfo
	if err := admin.do(http.MethodGet, "/miniapp/oidc/grants", url.Values{"user": {user}}, &list); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	// a tabwriter's errors come with Flush
	_, _ = fmt.Fprintln(tw, "ID\tCLIENT\tSINCE\tLAST USED\tUNTIL")
	for _, g := range list {
		_, _ = fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", printable(g.ID), printable(g.Client), g.Created.Format(time.RFC3339),
			g.Used.Format(time.RFC3339), g.Until.Format(time.RFC3339))
	}
	return tw.Flush()
}

// revokeGrantsCommand revokes every grant of the user.
func revokeGrantsCommand(admin adminClient, user string, out io.Writer) error {
	var result GrantsRevoked
	if err := admin.do(http.MethodDelete, "/miniapp/oidc/grants", url.Values{"user": {user}}, &result); err != nil {
		return err
	}
	_, err := fmt.Fprintf(out, "revoked %d OpenID Connect grants of %s\n", result.Revoked, printable(result.User))
	return err
}

// rotateKeyCommand is `caddy miniapp oidc-rotate-key`, without an
// argument.
func rotateKeyCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "oidc-rotate-key",
		Short: "Publishes a new OpenID Connect signing key, which signs an hour later",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			admin, err := newAdminClient(cmd)
			if err != nil {
				return err
			}
			var result KeyRotated
			if err := admin.do(http.MethodPost, "/miniapp/oidc/keys", url.Values{}, &result); err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "new signing key %s, listed now, signs from %s\n", printable(result.KID),
				result.SignsFrom.Format(time.RFC3339))
			return err
		},
	}
}
