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
	h.unregister = admin.Register(&admin.Node{Realm: h.Realm, Accounts: h.accounts, Shared: h.shared, Place: h.store.Place(),
		Records: h.records, TOTP: h.totp, Passkeys: &passkey.Service{Records: h.records, Clock: h.clock, Logger: h.logger},
		Logger: h.logger, Logout: func() { h.count(metrics.logouts) }})
}
