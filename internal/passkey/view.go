package passkey

import (
	"encoding/json"

	"github.com/caddy-miniapp/miniapp/internal/web"
)

// AppendJSON appends the passkeys as the profile's JSON lists them.
func AppendJSON(b []byte, keys []Key) []byte {
	if len(keys) == 0 {
		return append(b, "[]"...)
	}
	views := make([]View, len(keys))
	for i, k := range keys {
		views[i] = ViewOf(k)
	}
	list, _ := json.Marshal(views) // plain values: never fails
	return append(b, list...)
}

// AppendRows appends the profile page's list of passkeys, each with its
// rename and delete forms, the latter with the field stepUp appends for
// the passkey's ID.
func AppendRows(b []byte, keys []Key, stepUp func(b []byte, id string) []byte) []byte {
	if len(keys) == 0 {
		return append(b, `<li class="meta">No passkeys yet.</li>`+"\n"...)
	}
	for _, k := range keys {
		v := ViewOf(k)
		b = web.PasskeyRow.AppendPage(b, func(b []byte, field int) []byte {
			switch field {
			case web.RowName:
				return web.AppendText(b, k.Name)
			case web.RowDetail:
				if v.LastUsed == nil {
					return append(b, "never"...)
				}
				return v.LastUsed.AppendFormat(b, web.TextTime)
			case web.RowTimeISO:
				return v.Created.AppendFormat(b, web.ISOTime)
			case web.RowTimeText:
				return v.Created.AppendFormat(b, web.TextTime)
			case web.RowStepUp:
				return stepUp(b, v.ID)
			default:
				return web.AppendText(b, v.ID)
			}
		})
	}
	return b
}
