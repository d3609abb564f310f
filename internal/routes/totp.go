package routes

import (
	"cmp"
	"errors"
	"html/template"
	"net/http"
	"strconv"
	"strings"

	"github.com/caddy-miniapp/miniapp/internal/gate"
	"github.com/caddy-miniapp/miniapp/internal/signin"
	"github.com/caddy-miniapp/miniapp/internal/totp"
	"github.com/caddy-miniapp/miniapp/internal/web"
	"go.uber.org/zap"
)

// TOTPPath is the page and endpoint where a signed-in user sets up,
// replaces and removes one-time codes.
const TOTPPath = "/profile/totp"

// totpChange is a POST of the second factor's page, read once.
type totpChange struct {
	action, enrollment, code string
	everywhere               bool
	proof                    signin.Proof
	client                   signin.Client
}

// SecondFactor is the second factor's page (GET) and endpoint (POST): begin a
// setup (no code), confirm it (enrollment and code), or with a current
// code `action=disable` or `action=recovery-codes`.
func (a *App) SecondFactor(w http.ResponseWriter, r *http.Request, in web.Request, sess *gate.Session) error {
	if err := web.Allow(w, r, "GET, HEAD, POST", http.MethodGet, http.MethodHead, http.MethodPost); err != nil {
		return err
	}
	if sess == nil {
		return a.SignInFirst(w, r, in, nil)
	}
	if sess.Guest != nil {
		return guestFactor()
	}
	w.Header().Set("Cache-Control", "no-store")
	if r.Method != http.MethodPost {
		return a.totpPage(w, r, in, sess, r.URL.Query().Has("replace"))
	}
	if err := a.sameOrigin(r); err != nil {
		return err
	}
	body, err := web.ReadFields(w, r, a.maxBody, "action", "enrollment", "code", "current_code", "password", "end_other_sessions")
	if err != nil {
		return err
	}
	for _, code := range []string{body["code"], body["current_code"]} {
		if err := totp.CheckCode(code); err != nil {
			return web.Reject(http.StatusBadRequest, err.Error())
		}
	}
	c := totpChange{action: body["action"], enrollment: body["enrollment"], code: body["code"], everywhere: body["end_other_sessions"] == "1",
		proof: signin.Proof{Password: body["password"], Code: body["current_code"]}, client: clientOf(r, in)}
	switch c.action {
	case "":
		if c.code == "" {
			return a.beginTOTP(w, r, in, sess, c)
		}
		return a.confirmTOTP(w, r, in, sess, c)
	case "disable", "recovery-codes":
		// the code they need is the step-up; a session that may only
		// enrol may change nothing else
		if a.SignIn.MustEnrol(sess) {
			return signin.ErrEnrolOnly
		}
		if c.code == "" {
			return web.Reject(http.StatusBadRequest, "code is required")
		}
		if _, err := a.SignIn.CheckCode(r.Context(), sess.User, c.code, in.Client, nil); err != nil {
			return a.SignIn.CodeFailed(sess.User, in.Client, http.StatusBadRequest, err)
		}
		if c.action == "disable" {
			return a.disableTOTP(w, r, in, sess)
		}
		codes, err := a.TOTP.NewRecoveryCodes(r.Context(), sess.User)
		if err != nil {
			return a.SignIn.CodeFailed(sess.User, in.Client, http.StatusBadRequest, err)
		}
		a.Logger.Info("recovery codes replaced", zap.String("user", sess.User), zap.String("client_ip", in.Client))
		return a.showRecoveryCodes(w, r, in, codes)
	}
	return web.Reject(http.StatusBadRequest, "action must be disable or recovery-codes, or none")
}

// beginTOTP starts a setup: a new secret, stored nowhere yet.
func (a *App) beginTOTP(w http.ResponseWriter, r *http.Request, in web.Request, sess *gate.Session, c totpChange) error {
	if err := a.SignIn.AllowChange(r.Context(), sess, true, c.proof, c.client); err != nil {
		return err
	}
	if in.Format != web.JSON {
		return a.totpPage(w, r, in, sess, true)
	}
	s, err := a.TOTP.NewSetup(a.issuer(in), sess.User, sess.ID, true)
	if err != nil {
		return a.Site.Internal(w, r, err)
	}
	return a.Site.JSON(w, r, http.StatusOK, s)
}

// confirmTOTP stores the factor being set up once its first code is
// right, with new recovery codes shown once, and starts a new session of
// two factors for this browser (ending the others when asked).
func (a *App) confirmTOTP(w http.ResponseWriter, r *http.Request, in web.Request, sess *gate.Session, c totpChange) error {
	e, err := a.TOTP.OpenEnrollment(sess.User, sess.ID, c.enrollment)
	if err != nil {
		return web.Reject(http.StatusBadRequest, err.Error())
	}
	if !e.SteppedUp {
		if err := a.SignIn.AllowChange(r.Context(), sess, true, c.proof, c.client); err != nil {
			return err
		}
	}
	codes, replaced, err := a.TOTP.Enrol(r.Context(), sess.User, e.Secret, c.code)
	if errors.Is(err, totp.ErrWrongCode) {
		a.count.SecondFactor("failure", "wrong_code")
		const msg = "wrong code; nothing was stored (check the time of your device)"
		if in.Format == web.HTML && !web.HasErrorRoutes(r) {
			// the same key again: the one the app has now
			return a.setupAgain(w, r, in, sess, e.Secret, c.enrollment, msg)
		}
		return web.Reject(http.StatusBadRequest, msg)
	}
	if err != nil {
		return a.SignIn.CodeFailed(sess.User, in.Client, http.StatusBadRequest, err)
	}
	a.Logger.Info("second factor added", zap.String("user", sess.User), zap.String("client_ip", in.Client),
		zap.Bool("replaced", replaced), zap.Bool("other_sessions_ended", c.everywhere))
	a.SignIn.Restart(r.Context(), w.Header(), sess, c.client, c.everywhere)
	return a.showRecoveryCodes(w, r, in, codes)
}

// showRecoveryCodes answers with recovery codes, shown this once.
func (a *App) showRecoveryCodes(w http.ResponseWriter, r *http.Request, in web.Request, codes []string) error {
	w.Header().Set("Cache-Control", "no-store")
	if in.Format == web.JSON {
		return a.Site.JSON(w, r, http.StatusOK, map[string][]string{"recovery_codes": codes})
	}
	return a.renderTOTP(w, r, http.StatusOK, web.PageData{Title: "Recovery codes", RecoveryCodes: codes})
}

// disableTOTP removes the factor, its code checked.
func (a *App) disableTOTP(w http.ResponseWriter, r *http.Request, in web.Request, sess *gate.Session) error {
	if err := a.TOTP.Remove(r.Context(), sess.User); err != nil {
		return a.SignIn.CodeFailed(sess.User, in.Client, http.StatusBadRequest, err)
	}
	a.endTrusts(r, sess.User)
	a.Logger.Info("second factor removed", zap.String("user", sess.User), zap.String("client_ip", in.Client), zap.String("by", "user"))
	if in.Format == web.JSON {
		return a.Site.JSON(w, r, http.StatusOK, map[string]totp.Status{"second_factor": a.TOTP.StatusOf(sess.User)})
	}
	web.Redirect(w, r, TOTPPath)
	return nil
}

// issuer is the name authenticator apps show for the codes: totp_issuer,
// or the site's host.
func (a *App) issuer(in web.Request) string {
	return cmp.Or(a.totpIssuer, in.Host, "miniapp")
}

// totpPage shows the second factor: its state and forms when the user
// has one, else (or with fresh) a new setup.
func (a *App) totpPage(w http.ResponseWriter, r *http.Request, in web.Request, sess *gate.Session, fresh bool) error {
	data := a.totpPageData(sess, "")
	status := a.TOTP.StatusOf(sess.User)
	data.Enrolled, data.Others = status.TOTP, strconv.Itoa(status.RecoveryCodesLeft)
	if !status.TOTP || fresh {
		s, err := a.TOTP.NewSetup(a.issuer(in), sess.User, sess.ID, false)
		if err != nil {
			return a.Site.Internal(w, r, err)
		}
		data.Setup, data.Enrolled = setupView(s), false
	}
	return a.renderTOTP(w, r, http.StatusOK, data)
}

// setupAgain shows the setup page again with the same key, after a wrong
// first code.
func (a *App) setupAgain(w http.ResponseWriter, r *http.Request, in web.Request, sess *gate.Session, secret, enrollment, msg string) error {
	s, err := totp.SetupAgain(a.issuer(in), sess.User, secret, enrollment)
	if err != nil {
		return a.Site.Internal(w, r, err)
	}
	data := a.totpPageData(sess, msg)
	data.Setup = setupView(s)
	return a.renderTOTP(w, r, http.StatusBadRequest, data)
}

// setupView is a setup as the page shows it: its QR code a PNG made
// here, safe as an image source.
func setupView(s totp.Setup) *web.Setup {
	return &web.Setup{Secret: s.Secret, URI: s.URI, Enrollment: s.Enrollment, QR: template.URL(s.QR)}
}

// totpPageData is the second factor's page for the session: its user,
// the step-up field a change asks for, whether it may only enrol.
func (a *App) totpPageData(sess *gate.Session, errMsg string) web.PageData {
	kind := a.SignIn.StepUpOf(sess)
	return web.PageData{Title: "Two-step sign-in", User: sess.User, Error: errMsg, MustEnrol: a.SignIn.MustEnrol(sess), Passkey: a.Passkeys != nil,
		StepUp:        template.HTML(kind.AppendField(nil, "step-up")),
		PasskeyStepUp: template.HTML(kind.AppendField(nil, "passkey-step-up"))}
}

// renderTOTP renders the second factor's page, whose QR code is a data:
// image.
func (a *App) renderTOTP(w http.ResponseWriter, r *http.Request, status int, data web.PageData) error {
	w.Header().Set("Content-Security-Policy", strings.Replace(a.Site.Policy(), "img-src 'self'", "img-src 'self' data:", 1))
	return a.Site.Render(w, r, status, "totp.html", data)
}
