package miniapp

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"html/template"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/passkey"
	"github.com/caddy-miniapp/miniapp/internal/routes"
	"github.com/caddy-miniapp/miniapp/internal/session"
	"github.com/caddy-miniapp/miniapp/internal/signin"
	"github.com/caddy-miniapp/miniapp/internal/web"
	"github.com/caddyserver/caddy/v2"
	"github.com/go-webauthn/webauthn/protocol/webauthncbor"
	"github.com/go-webauthn/webauthn/protocol/webauthncose"
)

var b64url = base64.RawURLEncoding

// authenticator is a software passkey authenticator for the tests: one
// ECDSA P-256 key, attestation "none", a signature counter that counts
// (or stays 0), and the user handle it was registered with.
type authenticator struct {
	t       testing.TB
	key     *ecdsa.PrivateKey
	id      []byte
	handle  []byte
	rpID    string
	counter uint32
	// verify sets the user verified flag
	verify bool
}

func newAuthenticator(t testing.TB, rpID string) *authenticator {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &authenticator{t: t, key: key, id: session.Random(32), rpID: rpID, verify: true}
}

// clientData is the client's data of a ceremony, as a browser makes it.
func clientData(kind, challenge, origin string) []byte {
	b, _ := json.Marshal(map[string]any{"type": kind, "challenge": challenge, "origin": origin, "crossOrigin": false})
	return b
}

// authData is the authenticator data: the RP ID hash, flags and counter,
// and the attested credential when creating.
func (a *authenticator) authData(create bool) []byte {
	rpHash := sha256.Sum256([]byte(a.rpID))
	flags := byte(0x01) // user present
	if a.verify {
		flags |= 0x04
	}
	if create {
		flags |= 0x40
	}
	out := append(rpHash[:], flags)
	out = binary.BigEndian.AppendUint32(out, a.counter)
	if !create {
		return out
	}
	pub, err := webauthncbor.Marshal(webauthncose.EC2PublicKeyData{
		PublicKeyData: webauthncose.PublicKeyData{KeyType: 2, Algorithm: -7}, Curve: 1,
		XCoord: a.key.X.FillBytes(make([]byte, 32)), YCoord: a.key.Y.FillBytes(make([]byte, 32)),
	})
	if err != nil {
		a.t.Fatal(err)
	}
	out = append(out, make([]byte, 16)...) // AAGUID
	out = binary.BigEndian.AppendUint16(out, uint16(len(a.id)))
	return append(append(out, a.id...), pub...)
}

// create answers a registration's options as navigator.credentials.create
// would, from origin.
func (a *authenticator) create(options map[string]any, origin string) json.RawMessage {
	pk := options["publicKey"].(map[string]any)
	a.handle, _ = b64url.DecodeString(pk["user"].(map[string]any)["id"].(string))
	att, err := webauthncbor.Marshal(map[string]any{"fmt": "none", "attStmt": map[string]any{}, "authData": a.authData(true)})
	if err != nil {
		a.t.Fatal(err)
	}
	return a.credential(map[string]any{
		"clientDataJSON":    b64url.EncodeToString(clientData("webauthn.create", pk["challenge"].(string), origin)),
		"attestationObject": b64url.EncodeToString(att),
		"transports":        []string{"internal"},
	})
}

// get answers a sign-in's options as navigator.credentials.get would,
// from origin, counting the signature.
func (a *authenticator) get(options map[string]any, origin string) json.RawMessage {
	pk := options["publicKey"].(map[string]any)
	if a.counter > 0 {
		a.counter++
	}
	data := a.authData(false)
	cd := clientData("webauthn.get", pk["challenge"].(string), origin)
	cdHash := sha256.Sum256(cd)
	digest := sha256.Sum256(append(append([]byte(nil), data...), cdHash[:]...))
	sig, err := ecdsa.SignASN1(rand.Reader, a.key, digest[:])
	if err != nil {
		a.t.Fatal(err)
	}
	return a.credential(map[string]any{
		"clientDataJSON": b64url.EncodeToString(cd), "authenticatorData": b64url.EncodeToString(data),
		"signature": b64url.EncodeToString(sig), "userHandle": b64url.EncodeToString(a.handle),
	})
}

func (a *authenticator) credential(response map[string]any) json.RawMessage {
	b, _ := json.Marshal(map[string]any{"id": b64url.EncodeToString(a.id), "rawId": b64url.EncodeToString(a.id), "type": "public-key",
		"response": response, "clientExtensionResults": map[string]any{}})
	return b
}

// passkeyHost is the host the passkey tests' requests go to.
const passkeyHost = "example.com"

// passkeyRequest is a JSON client's request over HTTPS to passkeyHost.
func passkeyRequest(method, target, contentType, body string, cookie *http.Cookie) request {
	return request{method: method, target: target, contentType: contentType, accept: "application/json", body: body, cookie: cookie, https: true}
}

// beginJSON posts action=begin and reads the options.
func (a *testApp) beginJSON(path string, cookie *http.Cookie) (map[string]any, string) {
	a.t.Helper()
	w := a.do(passkeyRequest("POST", path, form, "action=begin", cookie))
	if w.Code != 200 {
		a.t.Fatalf("begin %s: %d %q", path, w.Code, w.Body)
	}
	options := decode[map[string]any](a.t, w)
	ceremony, _ := options["ceremony"].(string)
	if ceremony == "" || options["publicKey"] == nil {
		a.t.Fatalf("begin %s: %s", path, w.Body)
	}
	return options, ceremony
}

// finish posts a ceremony's JSON end.
func (a *testApp) finish(path, ceremony string, credential json.RawMessage, name string, cookie *http.Cookie) *httptest.ResponseRecorder {
	a.t.Helper()
	body, _ := json.Marshal(map[string]any{"ceremony": ceremony, "credential": credential, "name": name})
	return a.do(passkeyRequest("POST", path, jsonType, string(body), cookie))
}

// httpsLogin signs in over HTTPS with a password and returns the cookie.
func (a *testApp) httpsLogin(user, password string) *http.Cookie {
	a.t.Helper()
	return sessionCookie(a.t, a.do(passkeyRequest("POST", "/login", form, "username="+user+"&password="+password, nil)))
}

// register registers the authenticator for the session's user.
func (a *testApp) register(auth *authenticator, cookie *http.Cookie, name string) *httptest.ResponseRecorder {
	a.t.Helper()
	options, ceremony := a.beginJSON(routes.PasskeysPath, cookie)
	return a.finish(routes.PasskeysPath, ceremony, auth.create(options, "https://"+passkeyHost), name, cookie)
}

// passkeyLogin signs in with the authenticator.
func (a *testApp) passkeyLogin(auth *authenticator) *httptest.ResponseRecorder {
	a.t.Helper()
	options, ceremony := a.beginJSON(routes.LoginPasskeyPath, nil)
	return a.finish(routes.LoginPasskeyPath, ceremony, auth.get(options, "https://"+passkeyHost), "", nil)
}

// httpsProfile is the profile's JSON over HTTPS for the cookie.
func (a *testApp) httpsProfile(cookie *http.Cookie) (int, factorProfile) {
	a.t.Helper()
	w := a.do(passkeyRequest("GET", "/profile", "", "", cookie))
	if w.Code != 200 {
		return w.Code, factorProfile{}
	}
	return w.Code, decode[factorProfile](a.t, w)
}

// TestPasskeyRegistrationAndLogin: a passkey registered with a session
// signs in without a password or a user name, with two factors when the
// authenticator verified the user; the profile lists it.
func TestPasskeyRegistrationAndLogin(t *testing.T) {
	a := newApp(t, "", nil)
	cookie := a.httpsLogin("ada", adaPassword)
	options, ceremony := a.beginJSON(routes.PasskeysPath, cookie)
	pk := options["publicKey"].(map[string]any)
	sel := pk["authenticatorSelection"].(map[string]any)
	if sel["residentKey"] != "required" || sel["userVerification"] != "preferred" || pk["attestation"] != "none" || pk["rp"].(map[string]any)["id"] != passkeyHost {
		t.Errorf("registration options: %v", pk)
	}
	auth := newAuthenticator(t, passkeyHost)
	w := a.finish(routes.PasskeysPath, ceremony, auth.create(options, "https://"+passkeyHost), "my laptop", cookie)
	created := decode[passkey.View](t, w)
	if w.Code != 201 || created.ID != b64url.EncodeToString(auth.id) || created.Name != "my laptop" {
		t.Fatalf("registration: %d %q", w.Code, w.Body)
	}
	options, ceremony = a.beginJSON(routes.LoginPasskeyPath, nil)
	if pk := options["publicKey"].(map[string]any); pk["allowCredentials"] != nil || pk["userVerification"] != "preferred" {
		t.Errorf("login options: %v", pk)
	}
	w = a.finish(routes.LoginPasskeyPath, ceremony, auth.get(options, "https://"+passkeyHost), "", nil)
	if w.Code != 200 || strings.TrimSpace(w.Body.String()) != `{"username":"ada"}` {
		t.Fatalf("passkey login: %d %q", w.Code, w.Body)
	}
	signedIn := sessionCookie(t, w)
	p := a.do(passkeyRequest("GET", "/profile", "", "", signedIn))
	var profile struct {
		Factors  int            `json:"factors"`
		Passkeys []passkey.View `json:"passkeys"`
	}
	if err := json.Unmarshal(p.Body.Bytes(), &profile); err != nil || profile.Factors != 2 || len(profile.Passkeys) != 1 ||
		profile.Passkeys[0].Name != "my laptop" || profile.Passkeys[0].LastUsed == nil {
		t.Errorf("profile after a passkey login: %s", p.Body)
	}
	// without user verification it is one factor
	auth.verify = false
	w = a.passkeyLogin(auth)
	if code, pr := a.httpsProfile(sessionCookie(t, w)); w.Code != 200 || code != 200 || pr.Factors != 1 {
		t.Errorf("a passkey without user verification: %d, profile %d %+v", w.Code, code, pr)
	}
	page := a.do(request{target: "/profile", accept: "text/html", cookie: signedIn, https: true}).Body.String()
	if !strings.Contains(page, "my laptop") || !strings.Contains(page, `id="passkey-add"`) || !strings.Contains(page, web.ScriptPath) {
		t.Errorf("the profile page does not list the passkey or offer to add one")
	}
}

// TestPasskeyChecks: a replayed assertion, a wrong origin, a wrong RP
// ID, a counter that goes back, a deleted passkey, a removed user and a
// user whose password hash changed are all refused; a registration
// with a known credential ID too.
func TestPasskeyChecks(t *testing.T) {
	dir := t.TempDir()
	a := newApp(t, dir, nil)
	cookie := a.httpsLogin("ada", adaPassword)
	auth := newAuthenticator(t, passkeyHost)
	auth.counter = 1
	if w := a.register(auth, cookie, ""); w.Code != 201 {
		t.Fatalf("registration: %d %q", w.Code, w.Body)
	}
	// replay: the same assertion twice
	options, ceremony := a.beginJSON(routes.LoginPasskeyPath, nil)
	assertion := auth.get(options, "https://"+passkeyHost)
	if w := a.finish(routes.LoginPasskeyPath, ceremony, assertion, "", nil); w.Code != 200 {
		t.Fatalf("first use: %d %q", w.Code, w.Body)
	}
	if w := a.finish(routes.LoginPasskeyPath, ceremony, assertion, "", nil); w.Code != 400 && w.Code != 401 {
		t.Errorf("a replayed assertion: %d", w.Code)
	}
	for name, tc := range map[string]struct {
		origin, rpID string
	}{
		"wrong origin": {"https://evil.example.net", passkeyHost},
		"wrong RP ID":  {"https://" + passkeyHost, "evil.example.net"},
	} {
		other := *auth
		other.rpID = tc.rpID
		options, ceremony := a.beginJSON(routes.LoginPasskeyPath, nil)
		if w := a.finish(routes.LoginPasskeyPath, ceremony, other.get(options, tc.origin), "", nil); w.Code != 401 {
			t.Errorf("%s: %d", name, w.Code)
		}
	}
	// a counter that goes back: a cloned key
	clone := *auth
	clone.counter = 1
	options, ceremony = a.beginJSON(routes.LoginPasskeyPath, nil)
	if w := a.finish(routes.LoginPasskeyPath, ceremony, clone.get(options, "https://"+passkeyHost), "", nil); w.Code != 401 {
		t.Errorf("a counter that went back: %d", w.Code)
	}
	if a.logs.FilterMessageSnippet("signature counter went backwards").Len() != 1 {
		t.Error("the counter's regression is not logged")
	}
	// the same credential for another user of the realm
	grace := a.httpsLogin("grace", gracePassword)
	same := *auth
	if w := a.register(&same, grace, ""); w.Code != 409 {
		t.Errorf("a credential ID registered twice: %d", w.Code)
	}
	// a user whose password hash changed, or who was removed
	for name, accounts := range map[string][]Account{
		"a new hash":     {{Username: "ada", Password: graceHash}, {Username: "grace", Password: graceHash}},
		"a removed user": {{Username: "grace", Password: graceHash}},
	} {
		b := newApp(t, dir, func(h *Handler) { h.Accounts = accounts; h.RevocationSync = caddy.Duration(1100 * time.Millisecond) })
		if w := b.passkeyLogin(auth); w.Code != 401 {
			t.Errorf("%s: %d", name, w.Code)
		}
	}
	// deleted from a passkey sign-in of the last 10 minutes (the password
	// session may not: the passkey is ada's only second factor), ending
	// the sessions it started, this one too
	started := sessionCookie(t, a.passkeyLogin(auth))
	other := sessionCookie(t, a.passkeyLogin(auth))
	w := a.do(passkeyRequest("POST", routes.PasskeysPath, form, "action=delete&id="+b64url.EncodeToString(auth.id), started))
	if w.Code != 200 {
		t.Fatalf("delete: %d %q", w.Code, w.Body)
	}
	if code, _ := a.httpsProfile(other); code != 401 {
		t.Errorf("a session the deleted passkey started: %d, want 401", code)
	}
	if code, _ := a.httpsProfile(cookie); code != 200 {
		t.Errorf("a session the passkey did not start: %d", code)
	}
	if w := a.passkeyLogin(auth); w.Code != 401 {
		t.Errorf("a deleted passkey: %d", w.Code)
	}
}

// TestPasskeyInput: oversized and malformed bodies, other hosts, a
// ceremony of another session or kind, plain HTTP, and passkeys off.
func TestPasskeyInput(t *testing.T) {
	a := newApp(t, "", nil)
	cookie := a.httpsLogin("ada", adaPassword)
	_, ceremony := a.beginJSON(routes.PasskeysPath, cookie)
	huge := `{"ceremony":"` + ceremony + `","credential":{"response":{"clientDataJSON":"` + strings.Repeat("A", 1<<20) + `"}}}`
	if w := a.do(passkeyRequest("POST", routes.PasskeysPath, jsonType, huge, cookie)); w.Code != 413 {
		t.Errorf("a 1 MiB clientDataJSON: %d", w.Code)
	}
	for name, body := range map[string]string{
		"no ceremony":       `{"credential":{}}`,
		"not JSON":          `{"ceremony":`,
		"a bad credential":  `{"ceremony":"` + ceremony + `","credential":{"id":"x"}}`,
		"a forged ceremony": `{"ceremony":"AAAA","credential":{"id":"x"}}`,
		"a long name":       `{"ceremony":"` + ceremony + `","credential":{},"name":"` + strings.Repeat("n", 65) + `"}`,
	} {
		if w := a.do(passkeyRequest("POST", routes.PasskeysPath, jsonType, body, cookie)); w.Code != 400 {
			t.Errorf("%s: %d %q", name, w.Code, w.Body)
		}
	}
	// a registration's ceremony is its session's alone, and no login's
	other := a.httpsLogin("ada", adaPassword)
	options, ceremony := a.beginJSON(routes.PasskeysPath, cookie)
	auth := newAuthenticator(t, passkeyHost)
	if w := a.finish(routes.PasskeysPath, ceremony, auth.create(options, "https://"+passkeyHost), "", other); w.Code != 400 {
		t.Errorf("another session's ceremony: %d", w.Code)
	}
	if w := a.finish(routes.LoginPasskeyPath, ceremony, auth.create(options, "https://"+passkeyHost), "", nil); w.Code != 400 {
		t.Errorf("a registration's ceremony at login: %d", w.Code)
	}
	if w := a.do(request{method: "POST", target: routes.LoginPasskeyPath, contentType: form, body: "action=begin", accept: "application/json"}); w.Code != 400 {
		t.Errorf("plain HTTP on another host than localhost: %d", w.Code)
	}
	ip := passkeyRequest("POST", routes.LoginPasskeyPath, form, "action=begin", nil)
	ip.header = map[string]string{"Host": "203.0.113.9"}
	if w := a.do(ip); w.Code != 400 {
		t.Errorf("an IP address host: %d", w.Code)
	}
	hostile := passkeyRequest("POST", routes.LoginPasskeyPath, form, "action=begin", nil)
	hostile.header = map[string]string{"Host": "a%zz"}
	if w := a.do(hostile); w.Code != 400 {
		t.Errorf("a Host that is no host: %d", w.Code)
	}
	upper := newApp(t, "", func(h *Handler) { h.PasskeyRPID = "Example.COM" })
	if w := upper.do(passkeyRequest("POST", routes.LoginPasskeyPath, form, "action=begin", nil)); w.Code != 200 {
		t.Errorf("passkey_rp_id in capitals: %d %q", w.Code, w.Body)
	}
	b := newApp(t, "", func(h *Handler) { h.PasskeyRPID = "login.example.org" })
	if w := b.do(passkeyRequest("POST", routes.LoginPasskeyPath, form, "action=begin", nil)); w.Code != 400 {
		t.Errorf("a host outside passkey_rp_id: %d", w.Code)
	}
	d := domainApp(t, "", "https://auth.example.test/login")
	onDomain := passkeyRequest("POST", routes.LoginPasskeyPath, form, "action=begin", nil)
	onDomain.header = map[string]string{"Host": "auth.example.test"}
	if w := d.do(onDomain); w.Code != 200 || decode[map[string]any](t, w)["publicKey"].(map[string]any)["rpId"] != "example.test" {
		t.Errorf("the RP ID with cookie_domain: %d %s", w.Code, w.Body)
	}
	off := false
	c := newApp(t, "", func(h *Handler) { h.Passkeys = &off })
	if w := c.do(passkeyRequest("POST", routes.LoginPasskeyPath, form, "action=begin", nil)); w.Code != 404 {
		t.Errorf("passkeys off: %d", w.Code)
	}
	if page := c.do(request{target: "/login", accept: "text/html"}).Body.String(); strings.Contains(page, `id="passkey-signin"`) || strings.Contains(page, web.ScriptPath) {
		t.Error("the login page offers passkeys that are off")
	}
	if w := a.do(passkeyRequest("POST", routes.PasskeysPath, form, "action=rename&id=AAAA&name=x", cookie)); w.Code != 404 {
		t.Errorf("renaming an unknown passkey: %d", w.Code)
	}
}

// TestPasskeyManage: rename, and a delete that needs a recent passkey
// sign-in when the passkey is the account's second factor.
func TestPasskeyManage(t *testing.T) {
	a := newApp(t, "", nil)
	cookie := a.httpsLogin("ada", adaPassword)
	auth := newAuthenticator(t, passkeyHost)
	if w := a.register(auth, cookie, "old"); w.Code != 201 {
		t.Fatalf("registration: %d", w.Code)
	}
	id := b64url.EncodeToString(auth.id)
	w := a.do(passkeyRequest("POST", routes.PasskeysPath, form, "action=rename&id="+id+"&name=work+phone", cookie))
	if renamed := decode[passkey.View](t, w); w.Code != 200 || renamed.Name != "work phone" {
		t.Fatalf("rename: %d %q", w.Code, w.Body)
	}
	// the profile page shows a name as text, never as markup
	hostile := `<img src=x onerror=alert(1)>"&'`
	if w := a.do(passkeyRequest("POST", routes.PasskeysPath, form, "action=rename&id="+id+"&name="+url.QueryEscape(hostile), cookie)); w.Code != 200 {
		t.Fatalf("rename to markup: %d %q", w.Code, w.Body)
	}
	page := a.do(request{target: "/profile", accept: "text/html", cookie: cookie, https: true}).Body.String()
	if strings.Contains(page, "<img") || !strings.Contains(page, template.HTMLEscapeString(hostile)) {
		t.Errorf("the profile page does not escape the passkey's name:\n%s", page)
	}
	a.advance(signin.RecentSignIn + time.Minute)
	if w := a.do(passkeyRequest("POST", routes.PasskeysPath, form, "action=delete&id="+id, cookie)); w.Code != 403 {
		t.Errorf("a delete from an old session: %d", w.Code)
	}
	// the passkey is ada's second factor: her password does not remove it
	if w := a.do(passkeyRequest("POST", routes.PasskeysPath, form, "action=delete&id="+id+"&password="+url.QueryEscape(adaPassword), cookie)); w.Code != 403 {
		t.Errorf("a delete with the password: %d %q", w.Code, w.Body)
	}
	if w := a.do(passkeyRequest("POST", routes.PasskeysPath, form, "action=delete&id="+id, sessionCookie(t, a.passkeyLogin(auth)))); w.Code != 200 {
		t.Errorf("a delete from a passkey sign-in: %d %q", w.Code, w.Body)
	}
	if a.logs.FilterMessage("passkey removed").Len() != 1 {
		t.Error("the removal is not logged")
	}
}

// TestPasskeyRequired: under second_factor required, a passkey that
// verifies its user is the session's way out of enrolment; one that does
// not is no factor, and never locks the user out of setting one up.
func TestPasskeyRequired(t *testing.T) {
	a := newApp(t, "", func(h *Handler) { h.SecondFactor = factorRequired })
	cookie := a.httpsLogin("ada", adaPassword)
	weak := newAuthenticator(t, passkeyHost)
	weak.verify = false
	if w := a.register(weak, cookie, "no PIN"); w.Code != 201 {
		t.Fatalf("a passkey without user verification: %d %q", w.Code, w.Body)
	}
	if code, _ := a.httpsProfile(cookie); code != 403 {
		t.Errorf("the session after a passkey without user verification: %d, want 403 (still enrolling)", code)
	}
	if w := a.do(passkeyRequest("POST", routes.TOTPPath, form, "", cookie)); w.Code != 200 {
		t.Errorf("setting up codes after a passkey without user verification: %d %q", w.Code, w.Body)
	}
	strong := newAuthenticator(t, passkeyHost)
	w := a.register(strong, cookie, "with PIN")
	if w.Code != 201 {
		t.Fatalf("a passkey with user verification: %d %q", w.Code, w.Body)
	}
	if code, p := a.httpsProfile(sessionCookie(t, w)); code != 200 || p.Factors != 2 {
		t.Errorf("the session after a passkey that verifies its user: %d %+v", code, p)
	}
	signedIn := sessionCookie(t, a.passkeyLogin(strong))
	if code, _ := a.httpsProfile(signedIn); code != 200 {
		t.Errorf("a passkey sign-in under second_factor required: %d", code)
	}
	// deleting the passkey this session began with ends it too
	w = a.do(passkeyRequest("POST", routes.PasskeysPath, form, "action=delete&id="+b64url.EncodeToString(strong.id), signedIn))
	if w.Code != 200 {
		t.Fatalf("delete: %d %q", w.Code, w.Body)
	}
	if code, _ := a.httpsProfile(signedIn); code != 401 {
		t.Errorf("the session the deleted passkey began: %d", code)
	}
}

// TestPasskeyAcrossNodes: a passkey registered on node A signs in on
// node B, on both backends.
func TestPasskeyAcrossNodes(t *testing.T) {
	for name, use := range storePlaces(t) {
		t.Run(name, func(t *testing.T) {
			a, b := twoNodes(t, t.TempDir(), use)
			auth := newAuthenticator(t, passkeyHost)
			if w := a.register(auth, a.httpsLogin("ada", adaPassword), ""); w.Code != 201 {
				t.Fatalf("registration on A: %d", w.Code)
			}
			syncUntilRecord(t, b, "passkeys:ada")
			if w := b.passkeyLogin(auth); w.Code != 200 {
				t.Errorf("sign-in on B: %d %q", w.Code, w.Body)
			}
		})
	}
}
