package routes

import (
	"encoding/hex"
	"fmt"
	"net/http"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/gate"
	"github.com/caddy-miniapp/miniapp/internal/totp"
	"github.com/caddy-miniapp/miniapp/internal/web"
	"go.uber.org/zap"
)

// TrustPath ends one of the user's browsers trusted for the second
// factor (POST id, from the profile's list).
const TrustPath = "/profile/trust"

// trustFor is how long "trust this browser" lasts, as the code step
// says it; empty when remember_second_factor is off.
func (a *App) trustFor() string {
	d := time.Duration(a.remember)
	switch {
	case d <= 0:
		return ""
	case d%(24*time.Hour) == 0:
		if days := int(d / (24 * time.Hour)); days != 1 {
			return fmt.Sprintf("%d days", days)
		}
		return "1 day"
	}
	return d.String()
}

// Untrust ends one of the session's user's trusted browsers (POST
// /profile/trust with id, form or JSON): a browser 303 /profile, JSON
// {"ended": true}; 404 for a trust not the user's.
func (a *App) Untrust(w http.ResponseWriter, r *http.Request, in web.Request, sess *gate.Session) error {
	if err := web.Allow(w, r, "POST", http.MethodPost); err != nil {
		return err
	}
	if sess == nil {
		return a.SignInFirst(w, r, in, nil)
	}
	if err := a.sameOrigin(r); err != nil {
		return err
	}
	body, err := web.ReadFields(w, r, a.maxBody, "id")
	if err != nil {
		return err
	}
	if id, err := hex.DecodeString(body["id"]); err != nil || len(id) != 16 {
		return web.Reject(http.StatusBadRequest, "id must be a trusted browser's ID of 32 hex digits")
	}
	ended, err := a.SignIn.Untrust(r.Context(), sess.User, body["id"], in.Client)
	switch {
	case err != nil:
		a.Logger.Error("ending a trusted browser", zap.String("user", sess.User), zap.Error(err))
		return web.Reject(http.StatusServiceUnavailable, "the store did not answer; try again")
	case !ended:
		return web.Reject(http.StatusNotFound, "no such trusted browser of yours")
	case in.Format == web.JSON:
		return a.Site.JSON(w, r, http.StatusOK, map[string]bool{"ended": true})
	}
	web.Redirect(w, r, "/profile")
	return nil
}

// endTrusts ends every browser of the user trusted for the second
// factor: sign out everywhere, turning the factor off.
func (a *App) endTrusts(r *http.Request, user string) {
	if err := a.TOTP.UntrustAll(r.Context(), user); err != nil {
		a.Logger.Error("trusted browsers not ended: the store did not answer", zap.String("user", user), zap.Error(err))
	}
}

// appendTrusts appends the profile's list of the user's trusted
// browsers, each with its "stop trusting" form; nothing for none.
func appendTrusts(b []byte, trusts []totp.Trust) []byte {
	if len(trusts) == 0 {
		return b
	}
	b = append(b, `<h2 id="trusts-title">Browsers trusted for two-step sign-in</h2>
<ul class="sessions" aria-labelledby="trusts-title">
`...)
	for _, t := range trusts {
		b = web.AppendText(append(b, `<li><span class="device">`...), t.Device)
		b = web.AppendText(append(b, `</span><br>
<span class="meta">`...), t.Address)
		b = t.Expires.UTC().AppendFormat(append(b, ` · trusted until `...), web.TextTime)
		b = append(b, `</span>
<form method="post" action="/profile/trust"><input type="hidden" name="id" value="`...)
		b = web.AppendText(b, t.ID)
		b = web.AppendText(append(b, `"><button type="submit" class="secondary" aria-label="Stop trusting `...), t.Device)
		b = append(b, `">Stop trusting</button></form></li>
`...)
	}
	return append(b, "</ul>\n"...)
}
