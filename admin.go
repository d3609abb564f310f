package miniapp

import (
	"github.com/caddy-miniapp/miniapp/internal/admin"
	"github.com/caddy-miniapp/miniapp/internal/passkey"
	"github.com/caddyserver/caddy/v2"
)

func init() {
	caddy.RegisterModule(admin.API{})
}

// register makes the provisioned handler known to the admin API, as a
// node of its realm, until Cleanup.
func (h *Handler) register() {
	keys := &passkey.Service{Records: h.records, Clock: h.clock, Logger: h.logger}
	if h.provider != nil {
		keys.Ended = h.provider.LoggedOut
	}
	node := &admin.Node{Realm: h.Realm, Accounts: h.accounts, Shared: h.shared, Place: h.store.Place(),
		Records: h.records, TOTP: h.totp, Passkeys: keys,
		OpenID: h.openIDNode(), Logger: h.logger, Logout: func() { h.count(metrics.logouts) }, Users: h.users, LoginURL: h.LoginURL}
	if h.Guests != nil {
		node.Guest = h.signin.GuestNamed
	}
	h.unregister = admin.Register(node)
}

// openIDNode is the provider as the admin API sees it, nil without one
// (a nil *oidc.Provider in the interface would not be nil).
func (h *Handler) openIDNode() admin.OpenID {
	if h.provider == nil {
		return nil
	}
	return h.provider
}
