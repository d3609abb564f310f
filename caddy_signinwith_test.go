package miniapp

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddy-miniapp/miniapp/internal/oidc"
	"github.com/caddy-miniapp/miniapp/internal/testport"
	"golang.org/x/oauth2"
)

// withSites is a built Caddy with an identity provider (this module's
// OpenID Connect provider, realm idp, on 127.0.0.1) and an app
// (localhost) that signs in through it as "company" and through a fake
// GitHub.
type withSites struct {
	port    int
	process *caddyProcess
	idp     string
	app     string
	admin   string
	// accessLog is the app's access log
	accessLog string
}

// startWith starts the sites: at the provider carol (linked to the
// app's ada), dave (linked to no one) and erin (in staff, linked to no
// one); at the app ada (a password too), grace (GitHub's user 1234567,
// no password), and guests from company in its staff.
func startWith(t *testing.T, github string) *withSites {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: runs the built Caddy")
	}
	s := &withSites{port: testport.Free(t)}
	s.idp, s.app = fmt.Sprintf("http://127.0.0.1:%d", s.port), fmt.Sprintf("http://localhost:%d", s.port)
	adminPort := testport.Free(t)
	s.admin = fmt.Sprintf("http://localhost:%d", adminPort)
	s.accessLog = filepath.Join(t.TempDir(), "access.log")
	config := fmt.Sprintf(`{
	admin localhost:%d
	http_port %d
	auto_https off
	storage file_system %s
}
%s {
	miniapp {
		realm idp
		user carol %s {
			email carol@example.test
		}
		user dave %s
		user erin %s {
			groups staff
		}
		oidc {
			issuer %s
			client app {
				secret %s
				redirect_uri %s/login/with/company/callback
			}
		}
	}
	respond "idp"
}
%s {
	log {
		output file %s
	}
	miniapp {
		user ada %s {
			sign_in_with company %s
		}
		user grace {
			sign_in_with github 1234567
		}
		sign_in_with company {
			issuer %s
			client_id app
			client_secret %s
			label "Company account"
			scopes openid profile email groups
			groups_claim groups
		}
		guests {
			from company
			groups staff
			give_groups readers
		}
		sign_in_with github {
			client_id gh-app
			client_secret gh-secret
			auth_url %s/login/oauth/authorize
			token_url %s/login/oauth/access_token
			api_url %s/api
		}
		oidc {
			issuer %s
			client tool {
				redirect_uri http://127.0.0.1/tool
			}
		}
	}
	respond "app"
}
`, adminPort, s.port, t.TempDir(), s.idp, adaHash, adaHash, adaHash, s.idp, oidcSecret, s.app,
		s.app, s.accessLog, adaHash, oidc.Subject("idp", "cfg:carol"), s.idp, oidcSecret, github, github, github, s.app)
	file := filepath.Join(t.TempDir(), "Caddyfile")
	if err := os.WriteFile(file, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	s.process = runCaddy(t, ".", t.TempDir(), "--config", file, "--adapter", "caddyfile")
	waitFor(t, (&ssoSites{}).browser(t), s.app+"/hello", s.process)
	return s
}

// begin starts a sign-in at the app through the provider, keeping next,
// and returns the provider's authorization URL and the flow cookie.
func (s *withSites) begin(t *testing.T, c *http.Client, provider string) (*url.URL, *http.Cookie) {
	t.Helper()
	resp, _ := call(t, c, "GET", s.app+"/login/with/"+provider+"?next=/after", "", "Accept", "text/html")
	to, err := resp.Location()
	if resp.StatusCode != http.StatusFound || err != nil {
		t.Fatalf("start: %d %v", resp.StatusCode, err)
	}
	var flow *http.Cookie
	for _, ck := range resp.Cookies() {
		if strings.Contains(ck.Name, "_with_") {
			flow = ck
		}
	}
	if flow == nil || flow.SameSite != http.SameSiteLaxMode || !flow.HttpOnly || flow.MaxAge != 600 {
		t.Fatalf("the flow cookie: %v", resp.Header["Set-Cookie"])
	}
	return to, flow
}

// atProvider follows the browser through this module's provider (its
// login as user) to the app's callback, and returns the callback URL.
func (s *withSites) atProvider(t *testing.T, c *http.Client, authURL *url.URL, user string) string {
	t.Helper()
	target := authURL.String()
	for range 8 {
		resp, _ := call(t, c, "GET", target, "", "Accept", "text/html")
		loc, err := resp.Location()
		if err != nil {
			t.Fatalf("GET %s: %d", target, resp.StatusCode)
		}
		switch {
		case strings.HasPrefix(loc.String(), s.app+"/login/with/company/callback?"):
			return loc.String()
		case loc.Path == "/login":
			form := url.Values{"username": {user}, "password": {adaPassword}, "next": {loc.Query().Get("next")}}
			resp, _ := call(t, c, "POST", s.idp+"/login", form.Encode(), "Accept", "text/html", "Origin", s.idp)
			next, err := resp.Location()
			if err != nil {
				t.Fatalf("login at the provider as %s: %d", user, resp.StatusCode)
			}
			target = next.String()
		default:
			target = loc.String()
		}
	}
	t.Fatal("no way back to the app")
	return ""
}

// profileUser is the user of the browser's session at the app, or "".
func (s *withSites) profileUser(t *testing.T, c *http.Client) string {
	t.Helper()
	resp, body := call(t, c, "GET", s.app+"/profile", "", "Accept", "application/json")
	if resp.StatusCode != http.StatusOK {
		return ""
	}
	var out struct{ Username string }
	_ = json.Unmarshal([]byte(body), &out)
	return out.Username
}

// TestCaddySignInWith: the login page offers the providers; a user
// linked at an OpenID Connect provider (this module's own, on another
// site) signs in through it and lands on next; a replayed callback and
// an identity linked to no one are refused, one the guests block admits
// gets a guest's session with prefixed groups; GitHub's preset signs in
// a user who has no password, whose password login is refused.
func TestCaddySignInWith(t *testing.T) {
	github := fakeGitHub(t)
	s := startWith(t, github.URL)
	c := (&ssoSites{}).browser(t)
	_, page := call(t, c, "GET", s.app+"/login?next=/after", "", "Accept", "text/html")
	for _, want := range []string{`href="/login/with/company?next=%2Fafter">Sign in with Company account</a>`, `href="/login/with/github?next=%2Fafter">Sign in with GitHub</a>`} {
		if !strings.Contains(page, want) {
			t.Errorf("the login page lacks %s", want)
		}
	}

	authURL, flow := s.begin(t, c, "company")
	if !strings.HasPrefix(authURL.String(), s.idp+oidc.AuthorizePath+"?") || authURL.Query().Get("code_challenge_method") != "S256" {
		t.Fatalf("the provider's URL: %s", authURL)
	}
	callback := s.atProvider(t, c, authURL, "carol")
	resp, _ := call(t, c, "GET", callback, "", "Accept", "text/html")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/after" {
		t.Fatalf("the callback: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if user := s.profileUser(t, c); user != "ada" {
		t.Errorf("signed in through company as %q, want ada", user)
	}
	_, prof := call(t, c, "GET", s.app+"/profile", "", "Accept", "application/json")
	if !strings.Contains(prof, `"via":"company"`) {
		t.Errorf("the sessions list does not say which provider: %s", prof)
	}
	if _, page := call(t, c, "GET", s.app+"/profile", "", "Accept", "text/html"); !strings.Contains(page, "· via Company account") ||
		!strings.Contains(page, "Other accounts you sign in with") || !strings.Contains(page, oidc.Subject("idp", "cfg:carol")) ||
		!strings.Contains(page, "ask its operator") {
		t.Error("the profile page does not say which provider the session came through, or the user's links")
	}
	if !strings.Contains(prof, `"sign_in_with":[{"provider":"company","subject":"`+oidc.Subject("idp", "cfg:carol")+`"}]`) {
		t.Errorf("the profile's JSON lacks the links: %s", prof)
	}

	// ada sets up a second factor: her next sign-in through company asks
	// for it, in the callback's own answer (its cookie is Strict)
	_, recovery := enrolOver(t, c, s.app)
	c2 := (&ssoSites{}).browser(t)
	authURL2, _ := s.begin(t, c2, "company")
	resp, body := call(t, c2, "GET", s.atProvider(t, c2, authURL2, "carol"), "", "Accept", "text/html")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `autocomplete="one-time-code"`) || s.profileUser(t, c2) != "" {
		t.Fatalf("a linked user with a second factor at the callback: %d", resp.StatusCode)
	}
	resp, _ = call(t, c2, "POST", s.app+"/login", "code="+recovery[0]+"&next=%2Fafter", "Origin", s.app)
	if _, prof := call(t, c2, "GET", s.app+"/profile", "", "Accept", "application/json"); resp.StatusCode != http.StatusSeeOther ||
		resp.Header.Get("Location") != "/after" || !strings.Contains(prof, `"username":"ada"`) || !strings.Contains(prof, `"factors":2`) {
		t.Errorf("the code step after company: %d to %q, profile %s", resp.StatusCode, resp.Header.Get("Location"), prof)
	}

	// two sign-ins begun in two tabs of one browser each finish: their
	// flows have cookies of their own; a HEAD neither starts one nor
	// uses one up
	if resp, _ := call(t, c2, "HEAD", s.app+"/login/with/company", ""); resp.StatusCode != http.StatusMethodNotAllowed || len(resp.Cookies()) != 0 {
		t.Errorf("HEAD of a sign-in's start: %d %v", resp.StatusCode, resp.Header["Set-Cookie"])
	}
	tab1, _ := s.begin(t, c2, "company")
	tab2, _ := s.begin(t, c2, "company")
	back1, back2 := s.atProvider(t, c2, tab1, "carol"), s.atProvider(t, c2, tab2, "carol")
	if resp, _ := call(t, c2, "HEAD", back1, ""); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("HEAD of a callback: %d", resp.StatusCode)
	}
	for i, back := range []string{back2, back1} {
		if resp, body := call(t, c2, "GET", back, "", "Accept", "text/html"); resp.StatusCode != http.StatusOK || !strings.Contains(body, `autocomplete="one-time-code"`) {
			t.Errorf("the callback of tab %d: %d", 2-i, resp.StatusCode)
		}
	}

	// the same callback again, with the flow cookie an attacker kept
	replay := (&ssoSites{}).browser(t)
	resp, body = call(t, replay, "GET", callback, "", "Accept", "text/html", "Cookie", flow.Name+"="+flow.Value)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "finished already") || s.profileUser(t, replay) != "" {
		t.Errorf("a replayed callback: %d", resp.StatusCode)
	}

	// dave is linked to no one at the app
	c = (&ssoSites{}).browser(t)
	authURL, _ = s.begin(t, c, "company")
	resp, body = call(t, c, "GET", s.atProvider(t, c, authURL, "dave"), "", "Accept", "text/html")
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(strings.ToLower(body), "this account is not allowed here") || s.profileUser(t, c) != "" {
		t.Errorf("an identity linked to no one: %d %s", resp.StatusCode, body)
	}

	// erin, in the provider's staff, is a guest: her groups there are
	// prefixed, so /miniapp/auth's group rules see company:staff, never
	// a local staff
	c = (&ssoSites{}).browser(t)
	authURL, _ = s.begin(t, c, "company")
	if resp, _ := call(t, c, "GET", s.atProvider(t, c, authURL, "erin"), "", "Accept", "text/html"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("erin's callback: %d", resp.StatusCode)
	}
	erin := "company:" + oidc.Subject("idp", "cfg:erin")
	if user := s.profileUser(t, c); user != erin {
		t.Errorf("erin signed in as %q, want %q", user, erin)
	}
	for rule, want := range map[string]int{"group=company:staff": 200, "group=readers": 200, "group=staff": 403} {
		resp, _ := call(t, c, "GET", s.app+"/miniapp/auth?"+rule, "")
		if resp.StatusCode != want || want == 200 && (resp.Header.Get("Remote-User") != erin || resp.Header.Get("Remote-Groups") != "readers,company:staff") {
			t.Errorf("/miniapp/auth?%s for the guest: %d %q %q, want %d", rule, resp.StatusCode, resp.Header.Get("Remote-User"), resp.Header.Get("Remote-Groups"), want)
		}
	}
	if resp, _ := call(t, c, "POST", s.app+"/profile/totp", "action=setup", "Origin", s.app); resp.StatusCode != http.StatusForbidden {
		t.Errorf("a guest setting up a second factor: %d", resp.StatusCode)
	}
	// the app's own OpenID Connect provider signs the guest in to a tool
	// as the subject of guest:<provider>:<id>, its ID its username
	if claims := s.toolSignIn(t, c); claims["sub"] != oidc.Subject(defaultRealm, "guest:"+erin) || claims["preferred_username"] != erin {
		t.Errorf("the guest's ID token at a tool: %v", claims)
	}
	// the admin API finds the guest by name, and signs her out
	admin := (&ssoSites{}).browser(t)
	if _, body := call(t, admin, "GET", s.admin+"/miniapp/sessions?user="+url.QueryEscape(erin), ""); !strings.Contains(body, `"via":"company"`) {
		t.Errorf("the admin API's sessions of the guest: %s", body)
	}
	if resp, body := call(t, admin, "POST", s.admin+"/miniapp/signout?user="+url.QueryEscape(erin), ""); resp.StatusCode != http.StatusOK ||
		!strings.Contains(body, `"ended":1`) || s.profileUser(t, c) != "" {
		t.Errorf("the admin API's sign-out of the guest: %d %s", resp.StatusCode, body)
	}

	// GitHub: grace, who has no password
	c = (&ssoSites{}).browser(t)
	authURL, _ = s.begin(t, c, "github")
	resp, _ = call(t, c, "GET", authURL.String(), "")
	back, err := resp.Location()
	if err != nil {
		t.Fatalf("the fake GitHub: %d", resp.StatusCode)
	}
	if resp, _ := call(t, c, "GET", back.String(), "", "Accept", "text/html"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("GitHub's callback: %d", resp.StatusCode)
	}
	if user := s.profileUser(t, c); user != "grace" {
		t.Errorf("signed in through GitHub as %q, want grace", user)
	}
	resp, _ = call(t, (&ssoSites{}).browser(t), "POST", s.app+"/login", "username=grace&password=", "Origin", s.app)
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("grace's password login without a password: %d", resp.StatusCode)
	}
	resp, _ = call(t, (&ssoSites{}).browser(t), "POST", s.app+"/login", "username=grace&password=anything", "Origin", s.app)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("grace's password login: %d", resp.StatusCode)
	}

	// no provider's code reached the app's access log, which records
	// query strings
	code, _ := url.Parse(callback)
	accessLog, err := os.ReadFile(s.accessLog)
	if err != nil || !strings.Contains(string(accessLog), "/login/with/github") {
		t.Fatalf("the access log: %v", err)
	}
	for _, secret := range []string{code.Query().Get("code"), "gh-code"} {
		if strings.Contains(string(accessLog), secret) {
			t.Errorf("the access log holds the code %s", secret)
		}
	}
}

// toolSignIn signs the browser's user in to the app's client "tool"
// (public, PKCE) and returns the ID token's claims.
func (s *withSites) toolSignIn(t *testing.T, c *http.Client) map[string]any {
	t.Helper()
	verifier := oauth2.GenerateVerifier()
	q := url.Values{"client_id": {"tool"}, "redirect_uri": {"http://127.0.0.1/tool"}, "response_type": {"code"}, "scope": {"openid profile"},
		"state": {"state-of-the-tool"}, "code_challenge": {oauth2.S256ChallengeFromVerifier(verifier)}, "code_challenge_method": {"S256"}}
	target := s.app + oidc.AuthorizePath + "?" + q.Encode()
	for range 4 {
		resp, _ := call(t, c, "GET", target, "", "Accept", "text/html")
		loc, err := resp.Location()
		if err != nil {
			t.Fatalf("GET %s: %d", target, resp.StatusCode)
		}
		if target = loc.String(); strings.HasPrefix(target, "http://127.0.0.1/tool?") {
			break
		}
	}
	back, _ := url.Parse(target)
	form := url.Values{"grant_type": {"authorization_code"}, "code": {back.Query().Get("code")}, "redirect_uri": {"http://127.0.0.1/tool"},
		"client_id": {"tool"}, "code_verifier": {verifier}}
	resp, body := call(t, c, "POST", s.app+oidc.TokenPath, form.Encode())
	var tok struct {
		IDToken string `json:"id_token"`
	}
	_ = json.Unmarshal([]byte(body), &tok)
	parts := strings.Split(tok.IDToken, ".")
	if resp.StatusCode != http.StatusOK || len(parts) != 3 {
		t.Fatalf("the tool's token: %d %s", resp.StatusCode, body)
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	claims := map[string]any{}
	if err != nil || json.Unmarshal(payload, &claims) != nil {
		t.Fatalf("the ID token's payload: %v", err)
	}
	return claims
}

// ghUsers are the fake GitHub's users by the authorize URL's as=: grace
// (1234567) by default, whose primary address is unverified, and two
// more at example.test, one with it unverified.
var ghUsers = map[string]struct {
	id       int
	login    string
	email    string
	verified bool
}{
	"":           {1234567, "grace-h", "grace@example.test", false},
	"unverified": {7654321, "erin-gh", "erin@example.test", false},
	"verified":   {7654322, "fay-gh", "fay@example.test", true},
}

// fakeGitHub is GitHub's OAuth and user API for the users of ghUsers:
// its authorize sends the browser straight back with a code.
func fakeGitHub(t *testing.T) *httptest.Server {
	t.Helper()
	gh := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/login/oauth/authorize":
			q := r.URL.Query()
			if q.Get("client_id") != "gh-app" || q.Get("code_challenge_method") != "S256" {
				http.Error(w, "bad request", http.StatusBadRequest)
				return
			}
			// as= picks another user: the test adds it to the URL
			code := "gh-code" + q.Get("as")
			http.Redirect(w, r, q.Get("redirect_uri")+"?code="+code+"&state="+url.QueryEscape(q.Get("state")), http.StatusFound)
		case "/login/oauth/access_token":
			id, secret, _ := r.BasicAuth()
			if id == "" {
				id, secret = r.PostFormValue("client_id"), r.PostFormValue("client_secret")
			}
			as, ok := strings.CutPrefix(r.PostFormValue("code"), "gh-code")
			if id != "gh-app" || secret != "gh-secret" || !ok || ghUsers[as].id == 0 || r.PostFormValue("code_verifier") == "" {
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"access_token":"gho_` + as + `","token_type":"bearer"}`))
		case "/api/user", "/api/user/emails":
			u := ghUsers[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer gho_")]
			if u.id == 0 {
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			if r.URL.Path == "/api/user" {
				_, _ = fmt.Fprintf(w, `{"id":%d,"login":"%s","name":"%s"}`, u.id, u.login, u.login)
				return
			}
			_, _ = fmt.Fprintf(w, `[{"email":"%s","primary":true,"verified":%v},{"email":"x@example.test","primary":false,"verified":true}]`, u.email, u.verified)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(gh.Close)
	return gh
}
