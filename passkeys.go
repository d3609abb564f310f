package miniapp

import (
	"cmp"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/records"

	"github.com/caddy-miniapp/miniapp/internal/account"
	"github.com/caddy-miniapp/miniapp/internal/session"
	"github.com/caddy-miniapp/miniapp/internal/sso"
	"github.com/caddy-miniapp/miniapp/internal/web"
	"github.com/caddy-miniapp/miniapp/store"
	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
	"go.uber.org/zap"
)

// The passkey routes: registering and managing (signed in), and signing
// in without a password or a user name.
const (
	passkeysPath     = "/profile/passkeys"
	loginPasskeyPath = "/login/passkey"
)

// ceremonyLifetime bounds a passkey ceremony between its beginning and
// its end.
const ceremonyLifetime = 5 * time.Minute

// passkeysKey names the store record of the user's passkeys.
func passkeysKey(user string) string { return "passkeys:" + user }

// passkeysOn reports whether passkeys are on (the default).
func (h *Handler) passkeysOn() bool { return h.Passkeys == nil || *h.Passkeys }

// passkeysOf returns the user's passkeys as this node holds them, and
// the sealed record they came from; a record that does not open is an
// error, and signs nobody in.
func (h *Handler) passkeysOf(user string) ([]account.Passkey, []byte, error) {
	sealed := h.shared.Record(passkeysKey(user))
	keys, err := h.openPasskeys(user, sealed)
	return keys, sealed, err
}

// openPasskeys opens a sealed passkeys record of the user; nil for none.
func (h *Handler) openPasskeys(user string, sealed []byte) ([]account.Passkey, error) {
	if sealed == nil {
		return nil, nil
	}
	var keys []account.Passkey
	if err := h.records.Open(passkeysKey(user), sealed, &keys); err != nil {
		return nil, err
	}
	return keys, nil
}

// swapPasskeys stores the user's passkeys made by change from the
// current ones (see swapRecord); none left removes the record.
func (h *Handler) swapPasskeys(r *http.Request, user string, change func([]account.Passkey) ([]account.Passkey, error)) error {
	key := passkeysKey(user)
	return h.records.Swap(r.Context(), key, func(sealed []byte) ([]byte, error) {
		keys, err := h.openPasskeys(user, sealed)
		if err != nil {
			return nil, err
		}
		next, err := change(keys)
		if err != nil || len(next) == 0 {
			return nil, err
		}
		return h.records.Seal(key, next), nil
	})
}

// userHandle is the account's WebAuthn user handle: derived from its ID,
// so an account whose password hash changed has another, and telling
// nothing of the user.
func userHandle(acct *account.Account) []byte {
	sum := sha256.Sum256(append([]byte("miniapp passkey user handle\x00"), acct.ID[:]...))
	return sum[:16]
}

// passkeyUser is an account as the WebAuthn library sees it.
type passkeyUser struct {
	acct  *account.Account
	creds []webauthn.Credential
}

func (u passkeyUser) WebAuthnID() []byte                         { return userHandle(u.acct) }
func (u passkeyUser) WebAuthnName() string                       { return u.acct.Name }
func (u passkeyUser) WebAuthnDisplayName() string                { return cmp.Or(u.acct.FullName, u.acct.Name) }
func (u passkeyUser) WebAuthnCredentials() []webauthn.Credential { return u.creds }

// credentialsOf are the account's passkeys that belong to it as it is
// configured now, as the library takes them.
func credentialsOf(acct *account.Account, keys []account.Passkey) []webauthn.Credential {
	var out []webauthn.Credential
	for _, k := range keys {
		if k.Account != acct.ID.Tag() {
			continue
		}
		transports := make([]protocol.AuthenticatorTransport, len(k.Transports))
		for i, t := range k.Transports {
			transports[i] = protocol.AuthenticatorTransport(t)
		}
		out = append(out, webauthn.Credential{ID: k.ID, PublicKey: k.PublicKey, AttestationType: k.AttestationType, Transport: transports,
			Flags:         webauthn.CredentialFlags{UserPresent: true, UserVerified: k.UserVerified, BackupEligible: k.BackupEligible, BackupState: k.BackupState},
			Authenticator: webauthn.Authenticator{AAGUID: k.AAGUID, SignCount: k.SignCount}})
	}
	return out
}

// relyingParty is the WebAuthn relying party of the request: the RP ID
// is passkey_rp_id, else the cookie domain, else the request's host, and
// the one origin accepted is the request's own, which must be an https
// host equal to or under the RP ID (http for localhost alone).
func (h *Handler) relyingParty(r *http.Request) (*webauthn.WebAuthn, error) {
	if !sso.ValidHost(r.Host) {
		return nil, web.Reject(http.StatusBadRequest, "passkeys are not offered on this host")
	}
	host := web.Host(r)
	rpID := cmp.Or(strings.ToLower(h.PasskeyRPID), h.domain.name, host)
	scheme := "http"
	if web.Secure(r) {
		scheme = "https"
	}
	if scheme == "http" && host != "localhost" {
		return nil, web.Reject(http.StatusBadRequest, "passkeys need https")
	}
	if host != rpID && !strings.HasSuffix(host, "."+rpID) || net.ParseIP(strings.Trim(host, "[]")) != nil {
		return nil, web.Reject(http.StatusBadRequest, "passkeys are not offered on this host")
	}
	origin := scheme + "://" + strings.ToLower(r.Host)
	rp, err := webauthn.New(&webauthn.Config{RPID: rpID, RPDisplayName: cmp.Or(h.TOTPIssuer, rpID), RPOrigins: []string{origin},
		AttestationPreference: protocol.PreferNoAttestation})
	if err != nil {
		return nil, web.Reject(http.StatusBadRequest, "passkeys are not offered on this host")
	}
	return rp, nil
}

// ceremony is a passkey ceremony between its beginning and its end,
// sealed for its purpose into the answer of its beginning, so that any
// node may finish what another began. A registration is bound to its
// session.
type ceremony struct {
	ID      string               `json:"id"`
	Session string               `json:"session,omitempty"`
	Expires int64                `json:"expires"`
	Data    webauthn.SessionData `json:"data"`
}

// sealCeremony seals a ceremony of the kind ("register" or "login"),
// bound to the session for a registration.
func (h *Handler) sealCeremony(kind string, sess *signedIn, data *webauthn.SessionData) string {
	c := ceremony{ID: hex.EncodeToString(session.Random(16)), Expires: h.clock.Now().Add(ceremonyLifetime).Unix(), Data: *data}
	// the ceremony's own expiry governs, on the handler's clock
	c.Data.Expires = time.Time{}
	if sess != nil {
		c.Session = hex.EncodeToString(sess.ID[:])
	}
	plain, _ := json.Marshal(c) // plain values: never fails
	return h.keys.SealData(session.PurposeCeremony, plain, "passkey "+kind)
}

// openCeremony opens a ceremony of the kind, refusing another session's,
// an expired one, or one already finished: counted in the store when it
// ends (for every node on Redis, on this node with storage) and revoked
// like a session (every node within the store's window).
func (h *Handler) openCeremony(r *http.Request, kind, value string, sess *signedIn) (*ceremony, error) {
	data, _, err := h.keys.OpenData(session.PurposeCeremony, value, "passkey "+kind)
	var c ceremony
	var id []byte
	if err == nil && json.Unmarshal(data, &c) == nil {
		id, _ = hex.DecodeString(c.ID)
	}
	if len(id) != 16 || h.clock.Now().Unix() >= c.Expires {
		return nil, web.Reject(http.StatusBadRequest, "the passkey ceremony has expired or is not valid; start again")
	}
	if sess != nil && c.Session != hex.EncodeToString(sess.ID[:]) {
		return nil, web.Reject(http.StatusBadRequest, "the passkey ceremony is not this session's; start again")
	}
	expires := time.Unix(c.Expires, 0)
	if h.shared.RevokedID([16]byte(id), expires) {
		return nil, web.Reject(http.StatusBadRequest, "the passkey ceremony was used already; start again")
	}
	n, _, err := h.shared.Strike(r.Context(), "ceremony:"+c.ID, 1, ceremonyLifetime)
	if err != nil {
		return nil, web.Reject(http.StatusServiceUnavailable, "the passkey cannot be checked now; try again shortly")
	}
	if n > 1 {
		return nil, web.Reject(http.StatusBadRequest, "the passkey ceremony was used already; start again")
	}
	h.shared.Revoke(r.Context(), [16]byte(id), expires)
	return &c, nil
}

// finishRequest is the JSON body that finishes a ceremony.
type finishRequest struct {
	Ceremony   string          `json:"ceremony"`
	Credential json.RawMessage `json:"credential"`
	Name       string          `json:"name"`
}

// readFinish reads a ceremony's JSON end, bounded by max_body_size: a
// larger body is 413 and is never parsed.
func (h *Handler) readFinish(w http.ResponseWriter, r *http.Request) (finishRequest, error) {
	var in finishRequest
	body, err := web.ReadBody(w, r, h.MaxBodySize)
	if err != nil {
		return in, err
	}
	if json.Unmarshal(body, &in) != nil || in.Ceremony == "" || len(in.Credential) == 0 {
		return in, web.Reject(http.StatusBadRequest, "the body must be JSON with ceremony and credential")
	}
	return in, nil
}

// creationJSON and assertionJSON are a ceremony's beginning as JSON: the
// library's options ({"publicKey": ...}) with the sealed ceremony beside
// publicKey.
type (
	creationJSON struct {
		*protocol.CredentialCreation
		Ceremony string `json:"ceremony"`
	}
	assertionJSON struct {
		*protocol.CredentialAssertion
		Ceremony string `json:"ceremony"`
	}
)

// passkeys registers (action=begin, then the JSON end), renames
// (action=rename) and deletes (action=delete) the signed-in user's
// passkeys.
func (h *Handler) passkeys(w http.ResponseWriter, r *http.Request, f web.Format, sess *signedIn) error {
	if !h.passkeysOn() {
		return web.Reject(http.StatusNotFound, "passkeys are off")
	}
	if err := web.Allow(w, r, "POST", http.MethodPost); err != nil {
		return err
	}
	if sess == nil {
		return h.signInFirst(w, r, f, nil)
	}
	if err := h.sameOrigin(r); err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	if web.IsJSON(r.Header.Get("Content-Type")) {
		return h.finishRegistration(w, r, sess)
	}
	in, err := web.ReadFields(w, r, h.MaxBodySize, "action", "id", "name", "password", "current_code")
	if err != nil {
		return err
	}
	if err := account.CheckCode(in["current_code"]); err != nil {
		return web.Reject(http.StatusBadRequest, err.Error())
	}
	proof := stepUpProof{password: in["password"], code: in["current_code"]}
	switch in["action"] {
	case "begin":
		return h.beginRegistration(w, r, sess, proof)
	case "rename":
		return h.renamePasskey(w, r, f, sess, in["id"], in["name"])
	case "delete":
		return h.deletePasskey(w, r, f, sess, in["id"], proof)
	}
	return web.Reject(http.StatusBadRequest, "action must be begin, rename or delete")
}

// beginRegistration starts a registration: a resident key, user
// verification preferred, no attestation, none of the user's passkeys
// again.
func (h *Handler) beginRegistration(w http.ResponseWriter, r *http.Request, sess *signedIn, proof stepUpProof) error {
	if err := h.allowChange(w, r, sess, true, proof); err != nil {
		return err
	}
	rp, err := h.relyingParty(r)
	if err != nil {
		return err
	}
	keys, _, err := h.passkeysOf(sess.User)
	if err != nil {
		return h.passkeyFailed(w, r, sess.User, err)
	}
	user := passkeyUser{acct: sess.acct, creds: credentialsOf(sess.acct, keys)}
	if len(user.creds) >= account.MaxPasskeys {
		return web.Reject(http.StatusConflict, "this account has 20 passkeys already; delete one first")
	}
	creation, data, err := rp.BeginRegistration(user,
		webauthn.WithResidentKeyRequirement(protocol.ResidentKeyRequirementRequired),
		webauthn.WithAuthenticatorSelection(protocol.AuthenticatorSelection{
			ResidentKey: protocol.ResidentKeyRequirementRequired, RequireResidentKey: protocol.ResidentKeyRequired(),
			UserVerification: protocol.VerificationPreferred,
		}),
		webauthn.WithConveyancePreference(protocol.PreferNoAttestation),
		webauthn.WithExclusions(webauthn.Credentials(user.creds).CredentialDescriptors()))
	if err != nil {
		return h.site.Internal(w, r, err)
	}
	return h.site.JSON(w, r, http.StatusOK, creationJSON{creation, h.sealCeremony("register", sess, data)})
}

// passkeyJSON is a passkey as the profile and the admin API show it.
type passkeyJSON struct {
	// ID is the credential ID, base64url.
	ID string `json:"id"`
	// Name is the user's label for it.
	Name string `json:"name"`
	// Created is when it was registered.
	Created time.Time `json:"created"`
	// LastUsed is when it last signed in, or null.
	LastUsed *time.Time `json:"last_used"`
}

// viewOfPasskey is a passkey as the profile and the admin API show it.
func viewOfPasskey(k account.Passkey) passkeyJSON {
	v := passkeyJSON{ID: base64.RawURLEncoding.EncodeToString(k.ID), Name: k.Name, Created: time.Unix(k.Created, 0).UTC()}
	if k.LastUsed != 0 {
		used := time.Unix(k.LastUsed, 0).UTC()
		v.LastUsed = &used
	}
	return v
}

// finishRegistration checks the authenticator's answer against the
// ceremony and stores the new passkey: 201 with its ID.
func (h *Handler) finishRegistration(w http.ResponseWriter, r *http.Request, sess *signedIn) error {
	in, err := h.readFinish(w, r)
	if err != nil {
		return err
	}
	if err := account.CheckPasskeyName(in.Name); err != nil {
		return web.Reject(http.StatusBadRequest, err.Error())
	}
	rp, err := h.relyingParty(r)
	if err != nil {
		return err
	}
	c, err := h.openCeremony(r, "register", in.Ceremony, sess)
	if err != nil {
		return err
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes(in.Credential)
	if err != nil {
		return web.Reject(http.StatusBadRequest, "the passkey's answer is malformed")
	}
	keys, _, err := h.passkeysOf(sess.User)
	if err != nil {
		return h.passkeyFailed(w, r, sess.User, err)
	}
	cred, err := rp.CreateCredential(passkeyUser{acct: sess.acct, creds: credentialsOf(sess.acct, keys)}, c.Data, parsed)
	if err != nil {
		h.logger.Warn("passkey registration refused", zap.String("user", sess.User), zap.String("client_ip", web.ClientIP(r)), zap.Error(err))
		return web.Reject(http.StatusBadRequest, "the passkey was not accepted")
	}
	if len(cred.ID) > 1023 {
		return web.Reject(http.StatusBadRequest, "the passkey's ID is too long")
	}
	if owner := h.passkeyOwner(cred.ID); owner != "" {
		return web.Reject(http.StatusConflict, "this passkey is registered already")
	}
	now := h.clock.Now()
	k := account.Passkey{ID: cred.ID, PublicKey: cred.PublicKey, AttestationType: cred.AttestationType,
		UserVerified: cred.Flags.UserVerified, BackupEligible: cred.Flags.BackupEligible, BackupState: cred.Flags.BackupState,
		AAGUID: cred.Authenticator.AAGUID, SignCount: cred.Authenticator.SignCount, Account: sess.acct.ID.Tag(),
		Name: cmp.Or(in.Name, store.DeviceName(r.UserAgent())), Created: now.Unix()}
	for _, t := range cred.Transport {
		// a handful of short names (usb, nfc, ble, internal, hybrid...)
		if len(k.Transports) < 8 && len(t) <= 16 {
			k.Transports = append(k.Transports, string(t))
		}
	}
	var ended []account.PasskeySession
	err = h.swapPasskeys(r, sess.User, func(keys []account.Passkey) ([]account.Passkey, error) {
		// the passkeys of the name's account before a new password hash
		// sign nobody in again: they go
		keys = slices.DeleteFunc(keys, func(old account.Passkey) bool { return old.Account != k.Account })
		if len(keys) >= account.MaxPasskeys {
			return nil, web.Reject(http.StatusConflict, "this account has 20 passkeys already; delete one first")
		}
		keys = append(keys, k)
		if ended, err = h.fitPasskeys(sess.User, keys); err != nil {
			return nil, web.Reject(http.StatusConflict, "this account's passkeys take all the room their record has; delete one first")
		}
		return keys, nil
	})
	if err != nil {
		return h.passkeyFailed(w, r, sess.User, err)
	}
	h.endSessions(r, ended)
	h.logger.Info("passkey added", zap.String("user", sess.User), zap.String("client_ip", web.ClientIP(r)), zap.String("passkey", k.Name))
	if h.mustEnrol(sess) && cred.Flags.UserVerified {
		// a session that had to enrol has its second factor now
		h.restartSession(w, r, sess, false)
	}
	return h.site.JSON(w, r, http.StatusCreated, viewOfPasskey(k))
}

// passkeyFailed answers a passkeys record that does not open (403: an
// operator resets it with caddy miniapp passkeys-reset) or a store that
// did not answer (503); any other error (a refusal) goes on as it is.
// Logged as a passkey failure, never as a second factor's.
func (h *Handler) passkeyFailed(w http.ResponseWriter, r *http.Request, user string, err error) error {
	if errors.Is(err, records.ErrUnreadable) {
		h.logger.Error("a user's passkeys record does not open; reset it with caddy miniapp passkeys-reset", zap.String("user", user))
		return web.Reject(http.StatusForbidden, "your passkeys cannot be read; ask an operator to reset them")
	}
	if down, ok := errors.AsType[records.StoreFailed](err); ok {
		h.logger.Error("changing or checking a passkey", zap.String("user", user), zap.Error(down.Err))
		w.Header().Set("Retry-After", "5")
		return web.Reject(http.StatusServiceUnavailable, "passkeys cannot be used now; try again shortly")
	}
	return err
}

// passkeyOwner is the user whose passkey has the credential ID in this
// realm, or empty: a credential ID is unique in a realm.
func (h *Handler) passkeyOwner(id []byte) string {
	for _, key := range h.shared.RecordKeys() {
		user, ok := strings.CutPrefix(key, "passkeys:")
		if !ok {
			continue
		}
		if keys, _, err := h.passkeysOf(user); err == nil && account.FindPasskey(keys, id) >= 0 {
			return user
		}
	}
	return ""
}

// parsePasskeyID reads a passkey ID as the profile shows it: base64url.
func parsePasskeyID(s string) ([]byte, error) {
	id, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(id) == 0 || len(id) > 1023 {
		return nil, web.Reject(http.StatusBadRequest, "id must be a passkey ID (base64url)")
	}
	return id, nil
}

// renamePasskey gives one of the user's passkeys a new name.
func (h *Handler) renamePasskey(w http.ResponseWriter, r *http.Request, f web.Format, sess *signedIn, idText, name string) error {
	id, err := parsePasskeyID(idText)
	if err != nil {
		return err
	}
	if name == "" {
		return web.Reject(http.StatusBadRequest, "name is required")
	}
	if err := account.CheckPasskeyName(name); err != nil {
		return web.Reject(http.StatusBadRequest, err.Error())
	}
	var renamed account.Passkey
	err = h.swapPasskeys(r, sess.User, func(keys []account.Passkey) ([]account.Passkey, error) {
		i := account.FindPasskey(keys, id)
		if i < 0 {
			return nil, web.Reject(http.StatusNotFound, "no such passkey of this user")
		}
		keys[i].Name = name
		renamed = keys[i]
		return keys, nil
	})
	if err != nil {
		return h.passkeyFailed(w, r, sess.User, err)
	}
	if f == web.JSON {
		return h.site.JSON(w, r, http.StatusOK, viewOfPasskey(renamed))
	}
	web.Redirect(w, r, "/profile")
	return nil
}

// deletePasskey removes one of the user's passkeys under the step-up
// policy, and ends the sessions it started: this one too, when it did.
func (h *Handler) deletePasskey(w http.ResponseWriter, r *http.Request, f web.Format, sess *signedIn, idText string, proof stepUpProof) error {
	id, err := parsePasskeyID(idText)
	if err != nil {
		return err
	}
	if err := h.allowChange(w, r, sess, false, proof); err != nil {
		return err
	}
	removed, err := h.removePasskey(r, sess.User, id)
	if err != nil {
		return h.passkeyFailed(w, r, sess.User, err)
	}
	h.logger.Info("passkey removed", zap.String("user", sess.User), zap.String("client_ip", web.ClientIP(r)), zap.String("passkey", removed.Name),
		zap.String("by", "user"))
	ended := slices.ContainsFunc(removed.Sessions, func(s account.PasskeySession) bool { return s.ID == sess.ID })
	if ended {
		h.clearCookie(w, r)
	}
	switch {
	case f == web.JSON:
		return h.site.JSON(w, r, http.StatusOK, viewOfPasskey(removed))
	case ended:
		web.Redirect(w, r, h.domain.loginURL)
	default:
		web.Redirect(w, r, "/profile")
	}
	return nil
}

// removePasskey removes the user's passkey and ends the sessions it
// started.
func (h *Handler) removePasskey(r *http.Request, user string, id []byte) (account.Passkey, error) {
	var removed account.Passkey
	err := h.swapPasskeys(r, user, func(keys []account.Passkey) ([]account.Passkey, error) {
		i := account.FindPasskey(keys, id)
		if i < 0 {
			return nil, web.Reject(http.StatusNotFound, "no such passkey of this user")
		}
		removed = keys[i]
		return append(keys[:i:i], keys[i+1:]...), nil
	})
	if err != nil {
		return removed, err
	}
	h.endSessions(r, removed.Sessions)
	return removed, nil
}

// loginPasskey signs in with a passkey, without a password or a user
// name: action=begin gives a discoverable login's options, and the JSON
// end checks the assertion and starts the session, of two factors when
// the authenticator verified the user.
func (h *Handler) loginPasskey(w http.ResponseWriter, r *http.Request, f web.Format, _ *signedIn) error {
	if !h.passkeysOn() {
		return web.Reject(http.StatusNotFound, "passkeys are off")
	}
	if err := web.Allow(w, r, "POST", http.MethodPost); err != nil {
		return err
	}
	if err := h.sameOrigin(r); err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	rp, err := h.relyingParty(r)
	if err != nil {
		return err
	}
	if !web.IsJSON(r.Header.Get("Content-Type")) {
		in, err := web.ReadFields(w, r, h.MaxBodySize, "action")
		if err != nil {
			return err
		}
		if in["action"] != "begin" {
			return web.Reject(http.StatusBadRequest, "action must be begin")
		}
		assertion, data, err := rp.BeginDiscoverableLogin(webauthn.WithUserVerification(protocol.VerificationPreferred))
		if err != nil {
			return h.site.Internal(w, r, err)
		}
		return h.site.JSON(w, r, http.StatusOK, assertionJSON{assertion, h.sealCeremony("login", nil, data)})
	}
	in, err := h.readFinish(w, r)
	if err != nil {
		return err
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes(in.Credential)
	if err != nil {
		return web.Reject(http.StatusBadRequest, "the passkey's answer is malformed")
	}
	login := loginInput{ip: web.ClientIP(r)}
	place, wait, err := h.guard.EnterCheck(h.guardLogin(login), h.clock.Now())
	if err != nil {
		return h.tooMany(w, login, wait, "passkey sign-in throttled", err.Error())
	}
	c, err := h.openCeremony(r, "login", in.Ceremony, nil)
	if err != nil {
		place.Leave(true)
		return err
	}
	var acct *account.Account
	user, cred, err := rp.ValidatePasskeyLogin(func(_, handle []byte) (webauthn.User, error) {
		a, ok := h.passkeyAccounts[string(handle)]
		if !ok {
			return nil, errors.New("no account has this user handle (removed, or its password hash changed)")
		}
		keys, _, err := h.passkeysOf(a.Name)
		if err != nil {
			return nil, err
		}
		acct = a
		return passkeyUser{acct: a, creds: credentialsOf(a, keys)}, nil
	}, c.Data, parsed)
	if err == nil && cred.Authenticator.CloneWarning {
		h.logger.Warn("passkey refused: its signature counter went backwards (a cloned key?)", zap.String("user", user.WebAuthnName()),
			zap.String("client_ip", login.ip))
		err = errors.New("signature counter went backwards")
	}
	place.Leave(err != nil)
	if err != nil {
		h.count(metrics.logins, "failure")
		h.logger.Warn("passkey sign-in refused", zap.String("client_ip", login.ip), zap.Error(err))
		return web.Reject(http.StatusUnauthorized, "the passkey was not accepted")
	}
	verified := parsed.Response.AuthenticatorData.Flags.HasUserVerified()
	login.name, login.device = acct.Name, h.knownDevice(r, acct.Name)
	login.next, _ = web.FormValue(r.URL.RawQuery, "next")
	login.next = h.safeNext(r, login.next)
	hasTOTP, err := h.shared.RecordNow(r.Context(), factorKey(acct.Name))
	if err != nil {
		return h.passkeyFailed(w, r, acct.Name, records.StoreFailed{Err: err})
	}
	if !verified && hasTOTP != nil {
		// a passkey without user verification is one factor: the code
		// follows
		h.markUsed(r, acct, cred, nil)
		return h.askCode(w, r, web.JSON, acct, login)
	}
	factors := uint8(1)
	if verified {
		factors = 2
		h.count(metrics.secondFactor, "success", "passkey")
	}
	sess := h.signInWith(w, r, acct, login, factors, "passkey")
	h.markUsed(r, acct, cred, sess)
	return h.site.JSON(w, r, http.StatusOK, map[string]string{"username": acct.Name})
}

// markUsed records a passkey's sign-in: its counter, when, and the
// session it started (nil: none yet).
func (h *Handler) markUsed(r *http.Request, acct *account.Account, cred *webauthn.Credential, sess *signedIn) {
	now := h.clock.Now().Unix()
	var ended []account.PasskeySession
	err := h.swapPasskeys(r, acct.Name, func(keys []account.Passkey) ([]account.Passkey, error) {
		i := account.FindPasskey(keys, cred.ID)
		if i < 0 {
			return nil, account.ErrNoPasskey
		}
		keys[i].SignCount, keys[i].LastUsed = max(keys[i].SignCount, cred.Authenticator.SignCount), now
		ended = nil
		if sess != nil {
			ended = keys[i].Started(sess.ID, sess.Expires.Unix(), now)
		}
		forgot, err := h.fitPasskeys(acct.Name, keys)
		ended = append(ended, forgot...)
		return keys, err
	})
	if err != nil {
		h.logger.Error("recording a passkey's use failed: its signature counter, last use and session are not stored", zap.String("user", acct.Name), zap.Error(err))
		return
	}
	h.endSessions(r, ended)
}

// fitPasskeys keeps the user's passkeys within their record's size,
// forgetting the oldest sessions they remember, which the caller ends
// (logged).
func (h *Handler) fitPasskeys(user string, keys []account.Passkey) ([]account.PasskeySession, error) {
	forgot, err := account.FitSessions(keys, records.MaxData)
	if len(forgot) > 0 {
		h.logger.Warn("a user's passkeys remember too many sessions for their record: the oldest are ended, so that deleting a passkey still ends every session it started",
			zap.String("user", user), zap.Int("ended", len(forgot)))
	}
	return forgot, err
}

// endSessions ends sessions a passkey started.
func (h *Handler) endSessions(r *http.Request, sessions []account.PasskeySession) {
	for _, s := range sessions {
		h.shared.Revoke(r.Context(), s.ID, time.Unix(s.Expires, 0))
	}
}
