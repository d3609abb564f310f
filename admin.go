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
	a := h.app
	keys := &passkey.Service{Records: a.Records, Clock: a.Clock, Logger: a.Logger}
	if a.Provider != nil {
		keys.Ended = a.Provider.LoggedOut
	}
	node := &admin.Node{Realm: h.Realm, Accounts: a.Accounts, Shared: a.Shared, Place: h.store.Place(),
		Records: a.Records, TOTP: a.TOTP, Passkeys: keys,
		OpenID: h.openIDNode(), Logger: a.Logger, Logout: realmCounter(h.Realm).Logout, Users: a.Users, LoginURL: h.LoginURL}
	if h.Guests != nil {
		node.Guest = a.SignIn.GuestNamed
	}
	h.unregister = admin.Register(node)
}

// openIDNode is the provider as the admin API sees it, nil without one
// (a nil *oidc.Provider in the interface would not be nil).
func (h *Handler) openIDNode() admin.OpenID {
	if h.app.Provider == nil {
		return nil
	}
	return h.app.Provider
}
