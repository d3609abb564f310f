package miniapp

import (
	"github.com/caddy-miniapp/miniapp/internal/admin"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
)

func init() {
	caddycmd.RegisterCommand(admin.Command())
}
