package routes

import (
	"encoding/hex"
	"net/http"
	"strconv"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/gate"
	"github.com/caddy-miniapp/miniapp/internal/oidc"
	"github.com/caddy-miniapp/miniapp/internal/passkey"
	"github.com/caddy-miniapp/miniapp/internal/session"
	"github.com/caddy-miniapp/miniapp/internal/signin"
	"github.com/caddy-miniapp/miniapp/internal/totp"
	"github.com/caddy-miniapp/miniapp/internal/web"
	"github.com/caddy-miniapp/miniapp/store"
	"go.uber.org/zap"
)

// Profile shows the signed-in user, the session's times, the account's
// sessions, its second factor and its passkeys.
func (a *App) Profile(w http.ResponseWriter, r *http.Request, in web.Request, sess *gate.Session) error {
	if err := web.Allow(w, r, "GET, HEAD", http.MethodGet, http.MethodHead); err != nil {
		return err
	}
	if sess == nil {
		return a.SignInFirst(w, r, in, nil)
	}
	w.Header().Set("Cache-Control", "no-store")
	// the realm's version before the page reads the realm (the session
	// was checked against it already, and is checked at every request):
	// a change meanwhile makes the page kept below stale at once
	version, now, client := a.Shared.Version(), a.Clock.Now(), gate.Client{IP: in.Client, UserAgent: r.UserAgent()}
	if in.Format != web.JSON {
		if body, ok := a.pages.get(sess.ID, version, clientOfPage(client), now); ok {
			web.Write(w, r, http.StatusOK, web.TextHTML, body)
			return nil
		}
	}
	// most accounts have a few sessions: their copy stays on the stack
	var few [4]store.Entry
	sessions, others := a.Gate.Sessions(few[:0], sess, client)
	var apps []oidc.GrantInfo
	if a.Provider != nil {
		// a record that does not open lists no apps; revoking them
		// all (caddy miniapp oidc-revoke) starts it anew
		apps, _ = a.Provider.Grants(sess.User)
	}
	if in.Format == web.JSON {
		// built by hand: this is the hot JSON path, and the name is
		// JSON-encoded once at load time
		web.WriteBuilt(w, r, http.StatusOK, web.AppJSON, func(body []byte) []byte {
			body = append(append(body, `{"username":`...), sess.Account.JSONName...)
			if sess.Account.FullName != "" {
				body = gate.AppendJSONString(append(body, `,"name":`...), sess.Account.FullName)
			}
			body = append(body, `,"issued":"`...)
			body = sess.Issued.UTC().AppendFormat(body, web.ISOTime)
			body = append(body, `","expires":"`...)
			body = sess.Expires.UTC().AppendFormat(body, web.ISOTime)
			body = gate.AppendJSON(append(body, `","sessions":`...), sessions, sess.ID)
			body = strconv.AppendInt(append(body, `,"other_sessions":`...), int64(others), 10)
			body = append(append(append(body, `,"factors":`...), gate.FactorText[min(sess.Factors, 2)]...), `,"second_factor":`...)
			body = totp.AppendStatus(body, a.TOTP.StatusOf(sess.User))
			if a.Passkeys != nil {
				body = passkey.AppendJSON(append(body, `,"passkeys":`...), a.Passkeys.Current(sess.Account))
			}
			if a.Provider != nil {
				body = a.Provider.AppendAppsJSON(append(body, `,"apps":`...), apps)
			}
			if a.remember > 0 {
				body = strconv.AppendBool(append(body, `,"trusted":`...), sess.Method == session.MethodTrusted)
				trusts, _ := a.TOTP.Trusts(sess.User)
				body = append(body, `,"trusted_browsers":[`...)
				for i, t := range trusts {
					if i > 0 {
						body = append(body, ',')
					}
					body = gate.AppendJSONString(append(body, `{"id":`...), t.ID)
					body = gate.AppendJSONString(append(body, `,"device":`...), t.Device)
					body = gate.AppendJSONString(append(body, `,"address":`...), t.Address)
					body = t.Expires.UTC().AppendFormat(append(body, `,"expires":"`...), web.ISOTime)
					body = append(body, `"}`...)
				}
				body = append(body, ']')
			}
			if links := sess.Account.Links; len(links) > 0 {
				body = append(body, `,"sign_in_with":[`...)
				for i, l := range links {
					if i > 0 {
						body = append(body, ',')
					}
					body = gate.AppendJSONString(append(body, `{"provider":`...), l.Provider)
					body = append(gate.AppendJSONString(append(body, `,"subject":`...), l.Subject), '}')
				}
				body = append(body, ']')
			}
			return append(body, '}')
		})
		return nil
	}
	page, keys, stepUp := web.ProfilePageNoPasskeys, []passkey.Key(nil), signin.StepUpNone
	if a.Passkeys != nil {
		page, keys, stepUp = web.ProfilePage, a.Passkeys.Current(sess.Account), a.SignIn.StepUpOf(sess)
	}
	issued, expires := sess.Issued.UTC(), sess.Expires.UTC()
	web.WriteBuilt(w, r, http.StatusOK, web.TextHTML, func(body []byte) []byte {
		body = page.AppendPage(body, func(b []byte, field int) []byte {
			switch field {
			case web.ProfileUser:
				if sess.Guest != nil && sess.Account.FullName != "" {
					// a guest's ID says little: its name at the provider first
					b = web.AppendText(b, sess.Account.FullName)
					return web.AppendText(append(b, " ("...), sess.User+")")
				}
				return web.AppendText(b, sess.User)
			case web.ProfileIssuedISO:
				return issued.AppendFormat(b, web.ISOTime)
			case web.ProfileIssuedText:
				return issued.AppendFormat(b, web.TextTime)
			case web.ProfileExpiresISO:
				return expires.AppendFormat(b, web.ISOTime)
			case web.ProfileExpiresText:
				return expires.AppendFormat(b, web.TextTime)
			case web.ProfileSessions:
				return gate.AppendRows(b, sessions, sess.ID, others, a.providerLabel)
			case web.ProfileFactor:
				return totp.AppendStatusLine(b, a.TOTP.StatusOf(sess.User))
			case web.ProfileStepUp:
				return stepUp.AppendField(b, "passkey-step-up")
			case web.ProfileApps:
				if a.Provider == nil {
					return b
				}
				return a.Provider.AppendApps(b, apps)
			case web.ProfileLinks:
				switch {
				case sess.Account.Managed:
					b = append(b, `<h2 id="password-title">Password</h2>
<p><a href="/profile/password" aria-describedby="password-title">Change your password</a></p>
`...)
				case sess.Account.HasPassword() && sess.Guest == nil:
					b = append(b, `<h2 id="password-title">Password</h2>
<p class="meta">Your password is managed in the server's config: ask its operator to change it.</p>
`...)
				}
				if a.remember > 0 {
					trusts, _ := a.TOTP.Trusts(sess.User)
					b = appendTrusts(b, trusts)
				}
				return a.appendLinks(b, sess.Account.Links)
			default:
				return passkey.AppendRows(b, keys, func(b []byte, id string) []byte { return stepUp.AppendField(b, "delete-"+id) })
			}
		})
		if a.Shared.Version() == version {
			a.pages.put(sess.ID, version, clientOfPage(client), a.keepUntil(sess, now), body, now)
		}
		return body
	})
	return nil
}

// keepUntil is until when the session's page rendered at now may be
// shown again: pageFresh at most, never past the session's expiry, nor
// past the end of its recent sign-in, which changes what the page's
// step-up fields ask for.
func (a *App) keepUntil(sess *gate.Session, now time.Time) time.Time {
	until := now.Add(pageFresh)
	if sess.Expires.Before(until) {
		until = sess.Expires
	}
	if recent := sess.Issued.Add(signin.RecentSignIn); !recent.Before(now) && recent.Before(until) {
		until = recent
	}
	return until
}

// endOther ends another session of the signed-in user, chosen on the
// profile page, and goes back to the profile.
func (a *App) endOther(w http.ResponseWriter, r *http.Request, in web.Request, sess *gate.Session, id [16]byte) error {
	if sess == nil {
		return a.SignInFirst(w, r, in, nil)
	}
	acct := store.AccountID(sess.Account.ID)
	if _, ok := a.Shared.EndSession(r.Context(), &acct, id); !ok {
		return web.Reject(http.StatusNotFound, "no such session of this user")
	}
	a.pages.drop(id)
	a.count.Logout()
	if a.Provider != nil {
		a.Provider.LoggedOut(sess.User, id[:])
	}
	a.Logger.Info("session ended", zap.String("user", sess.User), zap.String("session", hex.EncodeToString(id[:])),
		zap.String("by", "profile page"), zap.String("client_ip", in.Client))
	web.Redirect(w, r, "/profile")
	return nil
}
