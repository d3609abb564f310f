package routes

import (
	"net/http"
	"slices"

	"github.com/caddy-miniapp/miniapp/internal/gate"
	"github.com/caddy-miniapp/miniapp/internal/passkey"
	"github.com/caddy-miniapp/miniapp/internal/signin"
	"github.com/caddy-miniapp/miniapp/internal/totp"
	"github.com/caddy-miniapp/miniapp/internal/web"
	"go.uber.org/zap"
)

// ManagePasskeys registers (action=begin, then the JSON end), renames
// (action=rename) and deletes (action=delete) the signed-in user's
// passkeys.
func (a *App) ManagePasskeys(w http.ResponseWriter, r *http.Request, in web.Request, sess *gate.Session) error {
	if a.Passkeys == nil {
		return web.Reject(http.StatusNotFound, "passkeys are off")
	}
	if err := web.Allow(w, r, "POST", http.MethodPost); err != nil {
		return err
	}
	if sess == nil {
		return a.SignInFirst(w, r, in, nil)
	}
	if sess.Guest != nil {
		return guestFactor()
	}
	if err := a.sameOrigin(r); err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	client := clientOf(r, in)
	if web.IsJSON(r.Header.Get("Content-Type")) {
		return a.finishRegistration(w, r, in, sess, client)
	}
	body, err := web.ReadFields(w, r, a.maxBody, "action", "id", "name", "password", "current_code")
	if err != nil {
		return err
	}
	if err := totp.CheckCode(body["current_code"]); err != nil {
		return web.Reject(http.StatusBadRequest, err.Error())
	}
	proof := signin.Proof{Password: body["password"], Code: body["current_code"]}
	var id []byte
	if body["action"] == "rename" || body["action"] == "delete" {
		if id = passkey.ParseID(body["id"]); id == nil {
			return web.Reject(http.StatusBadRequest, "id must be a passkey ID (base64url)")
		}
	}
	switch body["action"] {
	case "begin":
		if err := a.SignIn.AllowChange(r.Context(), sess, true, proof, client); err != nil {
			return err
		}
		rp, err := a.Passkeys.RelyingParty(passkey.Site{Host: r.Host, Secure: in.Secure})
		if err != nil {
			return err
		}
		options, err := a.Passkeys.BeginRegistration(rp, sess.Account, sess.ID)
		if err != nil {
			return a.SignIn.PasskeyFailed(sess.User, err)
		}
		return a.Site.JSON(w, r, http.StatusOK, options)
	case "rename":
		return a.renamePasskey(w, r, in, sess, id, body["name"])
	case "delete":
		return a.deletePasskey(w, r, in, sess, id, proof, client)
	}
	return web.Reject(http.StatusBadRequest, "action must be begin, rename or delete")
}

// finishRegistration checks the authenticator's answer against the
// ceremony and stores the new passkey: 201 with its ID.
func (a *App) finishRegistration(w http.ResponseWriter, r *http.Request, in web.Request, sess *gate.Session, client signin.Client) error {
	finish, err := a.readFinish(w, r)
	if err != nil {
		return err
	}
	rp, err := a.Passkeys.RelyingParty(passkey.Site{Host: r.Host, Secure: in.Secure})
	if err != nil {
		return err
	}
	k, err := a.Passkeys.FinishRegistration(r.Context(), rp, sess.Account, sess.ID, finish, gate.DeviceName(client.UserAgent))
	if err != nil {
		return a.SignIn.PasskeyFailed(sess.User, err)
	}
	a.Logger.Info("passkey added", zap.String("user", sess.User), zap.String("client_ip", in.Client), zap.String("passkey", k.Name))
	if a.SignIn.MustEnrol(sess) && k.UserVerified {
		// a session that had to enrol has its second factor now
		a.SignIn.Restart(r.Context(), w.Header(), sess, client, false)
	}
	return a.Site.JSON(w, r, http.StatusCreated, passkey.ViewOf(k))
}

// renamePasskey gives one of the user's passkeys a new name.
func (a *App) renamePasskey(w http.ResponseWriter, r *http.Request, in web.Request, sess *gate.Session, id []byte, name string) error {
	if name == "" {
		return web.Reject(http.StatusBadRequest, "name is required")
	}
	if err := passkey.CheckName(name); err != nil {
		return web.Reject(http.StatusBadRequest, err.Error())
	}
	renamed, err := a.Passkeys.Rename(r.Context(), sess.User, id, name)
	if err != nil {
		return a.SignIn.PasskeyFailed(sess.User, err)
	}
	if in.Format == web.JSON {
		return a.Site.JSON(w, r, http.StatusOK, passkey.ViewOf(renamed))
	}
	web.Redirect(w, r, "/profile")
	return nil
}

// deletePasskey removes one of the user's passkeys under the step-up
// policy, and ends the sessions it started: this one too, when it did.
func (a *App) deletePasskey(w http.ResponseWriter, r *http.Request, in web.Request, sess *gate.Session, id []byte, proof signin.Proof, client signin.Client) error {
	if err := a.SignIn.AllowChange(r.Context(), sess, false, proof, client); err != nil {
		return err
	}
	removed, err := a.Passkeys.Remove(r.Context(), sess.User, id)
	if err != nil {
		return a.SignIn.PasskeyFailed(sess.User, err)
	}
	a.Logger.Info("passkey removed", zap.String("user", sess.User), zap.String("client_ip", in.Client), zap.String("passkey", removed.Name),
		zap.String("by", "user"))
	ended := slices.ContainsFunc(removed.Sessions, func(s passkey.Session) bool { return s.ID == sess.ID })
	if ended {
		a.Gate.End(w.Header(), client.Wire)
	}
	switch {
	case in.Format == web.JSON:
		return a.Site.JSON(w, r, http.StatusOK, passkey.ViewOf(removed))
	case ended:
		web.Redirect(w, r, a.domain.LoginURL)
	default:
		web.Redirect(w, r, "/profile")
	}
	return nil
}
