package passkey

import (
	"cmp"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/account"
	"github.com/caddy-miniapp/miniapp/internal/session"
	"github.com/caddy-miniapp/miniapp/internal/sso"
	"github.com/caddy-miniapp/miniapp/internal/web"
	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
	"go.uber.org/zap"
)

// CeremonyLifetime bounds a passkey ceremony between its beginning and
// its end.
const CeremonyLifetime = 5 * time.Minute

// Site is where a ceremony happens: the request's Host header as sent,
// and whether it came over HTTPS.
type Site struct {
	Host   string
	Secure bool
}

// RelyingParty is the WebAuthn relying party of the site: the RP ID is
// passkey_rp_id, else the cookie domain, else the site's host, and the
// one origin accepted is the site's own, which must be an https host
// equal to or under the RP ID (http for localhost alone).
func (s *Service) RelyingParty(site Site) (*webauthn.WebAuthn, error) {
	if !sso.ValidHost(site.Host) {
		return nil, web.Reject(http.StatusBadRequest, "passkeys are not offered on this host")
	}
	host := strings.ToLower(site.Host)
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	rpID := cmp.Or(s.RPID, s.Domain, host)
	scheme := "http"
	if site.Secure {
		scheme = "https"
	}
	if scheme == "http" && host != "localhost" {
		return nil, web.Reject(http.StatusBadRequest, "passkeys need https")
	}
	if host != rpID && !strings.HasSuffix(host, "."+rpID) || net.ParseIP(strings.Trim(host, "[]")) != nil {
		return nil, web.Reject(http.StatusBadRequest, "passkeys are not offered on this host")
	}
	rp, err := webauthn.New(&webauthn.Config{RPID: rpID, RPDisplayName: cmp.Or(s.Name, rpID), RPOrigins: []string{scheme + "://" + strings.ToLower(site.Host)},
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
// bound to the session for a registration (nil: none).
func (s *Service) sealCeremony(kind string, sessionID *[16]byte, data *webauthn.SessionData) string {
	c := ceremony{ID: hex.EncodeToString(session.Random(16)), Expires: s.Clock.Now().Add(CeremonyLifetime).Unix(), Data: *data}
	// the ceremony's own expiry governs, on the handler's clock
	c.Data.Expires = time.Time{}
	if sessionID != nil {
		c.Session = hex.EncodeToString(sessionID[:])
	}
	plain, _ := json.Marshal(c) // plain values: never fails
	return s.Records.Keys.SealData(session.PurposeCeremony, plain, "passkey "+kind)
}

// openCeremony opens a ceremony of the kind, refusing another
// session's, an expired one, or one already finished: counted in the
// store when it ends (for every node on Redis, on this node with
// storage) and revoked like a session (every node within the store's
// window).
func (s *Service) openCeremony(ctx context.Context, kind, value string, sessionID *[16]byte) (*ceremony, error) {
	data, _, err := s.Records.Keys.OpenData(session.PurposeCeremony, value, "passkey "+kind)
	var c ceremony
	var id []byte
	if err == nil && json.Unmarshal(data, &c) == nil {
		id, _ = hex.DecodeString(c.ID)
	}
	if len(id) != 16 || s.Clock.Now().Unix() >= c.Expires {
		return nil, web.Reject(http.StatusBadRequest, "the passkey ceremony has expired or is not valid; start again")
	}
	if sessionID != nil && c.Session != hex.EncodeToString(sessionID[:]) {
		return nil, web.Reject(http.StatusBadRequest, "the passkey ceremony is not this session's; start again")
	}
	realm := s.Records.Realm
	expires := time.Unix(c.Expires, 0)
	if realm.RevokedID([16]byte(id), expires) {
		return nil, web.Reject(http.StatusBadRequest, "the passkey ceremony was used already; start again")
	}
	n, _, err := realm.Strike(ctx, "ceremony:"+c.ID, 1, CeremonyLifetime)
	if err != nil {
		return nil, web.Reject(http.StatusServiceUnavailable, "the passkey cannot be checked now; try again shortly")
	}
	if n > 1 {
		return nil, web.Reject(http.StatusBadRequest, "the passkey ceremony was used already; start again")
	}
	realm.Revoke(ctx, [16]byte(id), expires)
	return &c, nil
}

// Finish is the JSON body that finishes a ceremony.
type Finish struct {
	// Ceremony is the sealed ceremony its beginning gave.
	Ceremony string `json:"ceremony"`
	// Credential is the authenticator's answer.
	Credential json.RawMessage `json:"credential"`
	// Name is a new passkey's label (a registration).
	Name string `json:"name"`
}

// ReadFinish reads a ceremony's end from its JSON body.
func ReadFinish(body []byte) (Finish, error) {
	var in Finish
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

// errTooMany refuses a passkey beyond MaxKeys.
var errTooMany = web.Reject(http.StatusConflict, "this account has 20 passkeys already; delete one first")

// BeginRegistration starts a registration for the account's session: a
// resident key, user verification preferred, no attestation, none of
// the user's passkeys again. Its answer is JSON for the browser.
func (s *Service) BeginRegistration(rp *webauthn.WebAuthn, acct *account.Account, sessionID [16]byte) (any, error) {
	keys, _, err := s.Of(acct.Name)
	if err != nil {
		return nil, err
	}
	u := user{acct: acct, creds: credentials(acct, keys)}
	if len(u.creds) >= MaxKeys {
		return nil, errTooMany
	}
	creation, data, err := rp.BeginRegistration(u,
		webauthn.WithResidentKeyRequirement(protocol.ResidentKeyRequirementRequired),
		webauthn.WithAuthenticatorSelection(protocol.AuthenticatorSelection{
			ResidentKey: protocol.ResidentKeyRequirementRequired, RequireResidentKey: protocol.ResidentKeyRequired(),
			UserVerification: protocol.VerificationPreferred,
		}),
		webauthn.WithConveyancePreference(protocol.PreferNoAttestation),
		webauthn.WithExclusions(webauthn.Credentials(u.creds).CredentialDescriptors()))
	if err != nil {
		return nil, err
	}
	return creationJSON{creation, s.sealCeremony("register", &sessionID, data)}, nil
}

// FinishRegistration checks the authenticator's answer against the
// ceremony of the account's session and stores the new passkey, named
// in.Name or else device.
func (s *Service) FinishRegistration(ctx context.Context, rp *webauthn.WebAuthn, acct *account.Account, sessionID [16]byte, in Finish, device string) (Key, error) {
	if err := CheckName(in.Name); err != nil {
		return Key{}, web.Reject(http.StatusBadRequest, err.Error())
	}
	c, err := s.openCeremony(ctx, "register", in.Ceremony, &sessionID)
	if err != nil {
		return Key{}, err
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes(in.Credential)
	if err != nil {
		return Key{}, web.Reject(http.StatusBadRequest, "the passkey's answer is malformed")
	}
	keys, _, err := s.Of(acct.Name)
	if err != nil {
		return Key{}, err
	}
	cred, err := rp.CreateCredential(user{acct: acct, creds: credentials(acct, keys)}, c.Data, parsed)
	if err != nil {
		s.Logger.Warn("passkey registration refused", zap.String("user", acct.Name), zap.Error(err))
		return Key{}, web.Reject(http.StatusBadRequest, ErrRefused.Error())
	}
	if len(cred.ID) > maxIDLen {
		return Key{}, web.Reject(http.StatusBadRequest, "the passkey's ID is too long")
	}
	if s.Owner(cred.ID) != "" {
		return Key{}, web.Reject(http.StatusConflict, "this passkey is registered already")
	}
	k := Key{ID: cred.ID, PublicKey: cred.PublicKey, AttestationType: cred.AttestationType,
		UserVerified: cred.Flags.UserVerified, BackupEligible: cred.Flags.BackupEligible, BackupState: cred.Flags.BackupState,
		AAGUID: cred.Authenticator.AAGUID, SignCount: cred.Authenticator.SignCount, Account: acct.Stable.Tag(),
		Name: cmp.Or(in.Name, device), Created: s.Clock.Now().Unix()}
	for _, t := range cred.Transport {
		// a handful of short names (usb, nfc, ble, internal, hybrid...)
		if len(k.Transports) < 8 && len(t) <= 16 {
			k.Transports = append(k.Transports, string(t))
		}
	}
	var ended []Session
	err = s.Swap(ctx, acct.Name, func(keys []Key) ([]Key, error) {
		// the passkeys of the name's account before a new password hash
		// sign nobody in again: they go
		keys = slices.DeleteFunc(keys, func(old Key) bool { return old.Account != k.Account })
		if len(keys) >= MaxKeys {
			return nil, errTooMany
		}
		keys = append(keys, k)
		if ended, err = s.fit(acct.Name, keys); err != nil {
			return nil, web.Reject(http.StatusConflict, "this account's passkeys take all the room their record has; delete one first")
		}
		return keys, nil
	})
	if err != nil {
		return Key{}, err
	}
	s.end(ctx, acct.Name, ended)
	return k, nil
}

// BeginLogin starts a discoverable login: its answer is JSON for the
// browser.
func (s *Service) BeginLogin(rp *webauthn.WebAuthn) (any, error) {
	assertion, data, err := rp.BeginDiscoverableLogin(webauthn.WithUserVerification(protocol.VerificationPreferred))
	if err != nil {
		return nil, err
	}
	return assertionJSON{assertion, s.sealCeremony("login", nil, data)}, nil
}

// Assertion is a passkey login the authenticator proved: the account,
// the credential, and whether the authenticator verified the user.
type Assertion struct {
	Account  *account.Account
	Verified bool
	cred     *webauthn.Credential
}

// ErrRefused is an assertion that does not prove an account's passkey;
// the error that wraps it says why, for the log.
var ErrRefused = errors.New("the passkey was not accepted")

// ParseLogin reads the authenticator's answer of a login.
func ParseLogin(in Finish) (*protocol.ParsedCredentialAssertionData, error) {
	parsed, err := protocol.ParseCredentialRequestResponseBytes(in.Credential)
	if err != nil {
		return nil, web.Reject(http.StatusBadRequest, "the passkey's answer is malformed")
	}
	return parsed, nil
}

// ErrCloned is a passkey whose signature counter went backwards: a
// cloned key, refused.
var ErrCloned = errors.New("its signature counter went backwards (a cloned key?)")

// Login checks a discoverable login's answer against its ceremony: the
// ceremony's own refusals (expired, used) as they are, ErrRefused for
// an answer that proves no passkey of a configured account.
func (s *Service) Login(ctx context.Context, rp *webauthn.WebAuthn, ceremony string, parsed *protocol.ParsedCredentialAssertionData) (Assertion, error) {
	c, err := s.openCeremony(ctx, "login", ceremony, nil)
	if err != nil {
		return Assertion{}, err
	}
	var acct *account.Account
	_, cred, err := rp.ValidatePasskeyLogin(func(_, handle []byte) (webauthn.User, error) {
		a, ok := s.byUserHandle(handle)
		if !ok {
			return nil, errors.New("no account has this user handle (removed, or its password hash changed)")
		}
		keys, _, err := s.Of(a.Name)
		if err != nil {
			return nil, err
		}
		acct = a
		return user{acct: a, creds: credentials(a, keys)}, nil
	}, c.Data, parsed)
	if err == nil && cred.Authenticator.CloneWarning {
		return Assertion{Account: acct}, fmt.Errorf("%w: %w", ErrRefused, ErrCloned)
	}
	if err != nil {
		return Assertion{}, fmt.Errorf("%w: %v", ErrRefused, err)
	}
	return Assertion{Account: acct, Verified: parsed.Response.AuthenticatorData.Flags.HasUserVerified(), cred: cred}, nil
}

// MarkUsed records a passkey's sign-in: its counter, when, and the
// session it started (nil: none yet).
func (s *Service) MarkUsed(ctx context.Context, a Assertion, started *session.Session) {
	now := s.Clock.Now().Unix()
	var ended []Session
	err := s.Swap(ctx, a.Account.Name, func(keys []Key) ([]Key, error) {
		i := Find(keys, a.cred.ID)
		if i < 0 {
			return nil, ErrNoKey
		}
		keys[i].SignCount, keys[i].LastUsed = max(keys[i].SignCount, a.cred.Authenticator.SignCount), now
		ended = nil
		if started != nil {
			ended = keys[i].Started(started.ID, started.Expires.Unix(), now)
		}
		forgot, err := s.fit(a.Account.Name, keys)
		ended = append(ended, forgot...)
		return keys, err
	})
	if err != nil {
		s.Logger.Error("recording a passkey's use failed: its signature counter, last use and session are not stored", zap.String("user", a.Account.Name), zap.Error(err))
		return
	}
	s.end(ctx, a.Account.Name, ended)
}
