package oidc

import (
	"cmp"
	"encoding/hex"
	"encoding/json"

	"github.com/caddy-miniapp/miniapp/internal/web"
)

// GrantsPath is where the profile's "sign out of this app" posts.
const GrantsPath = Prefix + "grants"

// name is a client's name as the profile shows it.
func (p *Provider) name(clientID string) string {
	if c := p.cfg.client(clientID); c != nil {
		return cmp.Or(c.Name, c.ID)
	}
	return clientID
}

// AppendApps appends the profile's list of the apps holding a refresh
// token of the user (its grants), nothing when there are none.
func (p *Provider) AppendApps(b []byte, grants []GrantInfo) []byte {
	if len(grants) == 0 {
		return b
	}
	return web.AppsList.AppendPage(b, func(b []byte, _ int) []byte {
		for _, g := range grants {
			since := g.Created.UTC()
			b = web.AppRow.AppendPage(b, func(b []byte, field int) []byte {
				switch field {
				case web.RowName:
					return web.AppendText(b, p.name(g.Client))
				case web.RowTimeISO:
					return since.AppendFormat(b, web.ISOTime)
				case web.RowTimeText:
					return since.AppendFormat(b, web.TextTime)
				case web.RowID:
					return web.AppendText(b, g.ID)
				}
				return b
			})
		}
		return b
	})
}

// AppView is an app holding a refresh token, as the profile's JSON
// shows it.
type AppView struct {
	// Grant is what DELETE-ing it takes; Client and Name name the app;
	// Since is when the user signed in to it.
	Grant  string `json:"grant"`
	Client string `json:"client"`
	Name   string `json:"name"`
	Since  string `json:"since"`
}

// AppendAppsJSON appends the grants as a JSON array of AppView.
func (p *Provider) AppendAppsJSON(b []byte, grants []GrantInfo) []byte {
	views := make([]AppView, len(grants))
	for i, g := range grants {
		views[i] = AppView{Grant: g.ID, Client: g.Client, Name: p.name(g.Client), Since: g.Created.UTC().Format(web.ISOTime)}
	}
	data, _ := json.Marshal(views) // plain values: never fails
	return append(b, data...)
}

// ParseGrant reads a grant's ID as the profile's form sends it.
func ParseGrant(s string) ([]byte, bool) {
	id, err := hex.DecodeString(s)
	return id, err == nil && len(id) == 16
}
