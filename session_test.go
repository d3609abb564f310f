package miniapp

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
)

func TestLoginPage(t *testing.T) {
	a := newApp(t, "", nil)
	w := a.do(request{target: "/login?next=/docs/a%3Fb", accept: "text/html"})
	body := w.Body.String()
	for _, want := range []string{`name="username"`, `name="password"`, `autocomplete="current-password"`, `name="next" value="/docs/a?b"`, `action="/login"`} {
		if !strings.Contains(body, want) {
			t.Errorf("login page lacks %s", want)
		}
	}
	if w.Code != 200 || w.Header().Get("Content-Security-Policy") == "" {
		t.Errorf("status %d CSP %q", w.Code, w.Header().Get("Content-Security-Policy"))
	}
	for _, next := range []string{"//evil.example", "/\\evil.example", "https://evil.example", `/"><script>`} {
		w := a.do(request{target: "/login?next=" + url.QueryEscape(next)})
		if strings.Contains(w.Body.String(), "evil") || strings.Contains(w.Body.String(), "<script>") {
			t.Errorf("next %q reached the page", next)
		}
	}
}

func TestLoginSuccess(t *testing.T) {
	a := newApp(t, "", nil)
	tests := []struct {
		name, target, body string
		https              bool
		location           string
	}{
		{"default", "/login", "username=ada&password=" + adaPassword, false, "/profile"},
		{"next in form", "/login", "username=ada&password=" + adaPassword + "&next=%2Fdocs%2Fa%3Fb%3D1", false, "/docs/a?b=1"},
		{"next in query", "/login?next=/docs", "username=ada&password=" + adaPassword, false, "/docs"},
		{"argon2id user", "/login", "username=grace&password=" + gracePassword, true, "/profile"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := a.do(request{method: "POST", target: tt.target, contentType: form, body: tt.body, https: tt.https})
			if w.Code != 303 || w.Header().Get("Location") != tt.location {
				t.Fatalf("status %d Location %q, want 303 %q", w.Code, w.Header().Get("Location"), tt.location)
			}
			if w.Header().Get("Cache-Control") != "no-store" {
				t.Error("no Cache-Control: no-store")
			}
			checkCommonHeaders(t, w)
			c := sessionCookie(t, w)
			wantName := "miniapp_session"
			if tt.https {
				wantName = "__Host-miniapp_session"
			}
			if c.Name != wantName || c.Path != "/" || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Secure != tt.https {
				t.Errorf("cookie flags: %+v", c)
			}
			if c.MaxAge < int((12*time.Hour).Seconds())-5 || c.MaxAge > int((12*time.Hour).Seconds()) {
				t.Errorf("Max-Age %d, want the session lifetime", c.MaxAge)
			}
		})
	}
}

func TestUnsafeNext(t *testing.T) {
	a := newApp(t, "", nil)
	for _, next := range []string{
		"//evil.example", "///evil.example", "/\\evil.example", "\\\\evil.example", "https://evil.example/",
		"javascript:alert(1)", "evil.example", "/%2F%2Fevil.example", "/%5Cevil.example", "/ok\r\nSet-Cookie: x=1",
		"/\tevil", "http:/evil.example", " /x", "/caf\u00e9", "",
	} {
		w := a.do(request{method: "POST", target: "/login", contentType: form,
			body: "username=ada&password=" + adaPassword + "&next=" + url.QueryEscape(next)})
		if w.Code != 303 || w.Header().Get("Location") != "/profile" {
			t.Errorf("next %q: status %d Location %q, want /profile", next, w.Code, w.Header().Get("Location"))
		}
	}
}

func TestLoginJSON(t *testing.T) {
	a := newApp(t, "", nil)
	w := a.do(request{method: "POST", target: "/login", contentType: jsonType, body: `{"username":"ada","password":"` + adaPassword + `"}`})
	if w.Code != 200 || w.Body.String() != `{"username":"ada"}` || w.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("status %d body %q", w.Code, w.Body.String())
	}
	sessionCookie(t, w)
}

func TestLoginFailure(t *testing.T) {
	a := newApp(t, "", func(h *Handler) { h.LoginLimit = &LoginLimit{Failures: 100, Window: caddy.Duration(time.Minute)} })
	const msg = "invalid username or password"
	tests := []struct {
		name, ctype, accept, body string
		status                    int
		want                      string
	}{
		{"wrong password html", form, "text/html", "username=ada&password=nope", 401, msg},
		{"unknown user html", form, "text/html", "username=mallory&password=nope", 401, msg},
		{"wrong password text", form, "", "username=ada&password=nope", 401, msg + "\n"},
		{"unknown user text", form, "", "username=mallory&password=nope", 401, msg + "\n"},
		{"wrong password json", jsonType, "", `{"username":"ada","password":"nope"}`, 401, `{"error":"` + msg + `"}`},
		{"unknown user json", jsonType, "", `{"username":"mallory","password":"nope"}`, 401, `{"error":"` + msg + `"}`},
		{"other user's password", form, "", "username=grace&password=" + adaPassword, 401, msg + "\n"},
		{"missing password", form, "", "username=ada", 400, "username and password are required\n"},
		{"missing username", form, "", "password=x", 400, "username and password are required\n"},
		{"empty body", form, "", "", 400, "username and password are required\n"},
		{"no body at all", "", "", "", 400, "username and password are required\n"},
		{"json missing", jsonType, "", `{}`, 400, `{"error":"username and password are required"}`},
		{"json not object", jsonType, "", `"x"`, 400, `{"error":"body is not a JSON object of string fields"}`},
		{"control in username", form, "", "username=a%0ab&password=x", 400, "text contains control characters\n"},
		{"password too long", form, "", "username=ada&password=" + strings.Repeat("x", 1025), 400, "username or password is too long\n"},
		{"wrong type", "text/plain", "", "username=ada", 415, "content type must be application/x-www-form-urlencoded or application/json\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := a.do(request{method: "POST", target: "/login", contentType: tt.ctype, accept: tt.accept, body: tt.body})
			if w.Code != tt.status {
				t.Fatalf("status %d, want %d (%q)", w.Code, tt.status, w.Body.String())
			}
			if tt.accept == "text/html" {
				body := w.Body.String()
				if !strings.Contains(body, tt.want) || !strings.Contains(body, `name="password"`) || !strings.Contains(body, `role="alert"`) {
					t.Errorf("form not shown again with the error: %q", body)
				}
			} else if w.Body.String() != tt.want {
				t.Errorf("body %q, want %q", w.Body.String(), tt.want)
			}
			if len(w.Result().Cookies()) != 0 {
				t.Error("a failed login set a cookie")
			}
			checkCommonHeaders(t, w)
		})
	}
}

func TestLoginCrossSite(t *testing.T) {
	a := newApp(t, "", nil)
	for _, hdr := range []map[string]string{
		{"Sec-Fetch-Site": "cross-site"},
		{"Origin": "https://evil.example"},
	} {
		w := a.do(request{method: "POST", target: "/login", contentType: form, https: true,
			body: "username=ada&password=" + adaPassword, header: hdr})
		if w.Code != 403 || len(w.Result().Cookies()) != 0 {
			t.Errorf("%v: status %d", hdr, w.Code)
		}
	}
	w := a.do(request{method: "POST", target: "/login", contentType: form, https: true,
		body: "username=ada&password=" + adaPassword, header: map[string]string{"Sec-Fetch-Site": "same-origin"}})
	if w.Code != 303 {
		t.Errorf("same-origin login: %d", w.Code)
	}
}

func TestProfile(t *testing.T) {
	a := newApp(t, "", nil)
	c := a.login("ada", adaPassword, true)
	w := a.do(request{target: "/profile", cookie: c, https: true, accept: "text/html"})
	if w.Code != 200 || !strings.Contains(w.Body.String(), "ada") || w.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("profile: %d %q", w.Code, w.Body.String())
	}
	w = a.do(request{target: "/profile", cookie: c, https: true, accept: "application/json"})
	var out struct {
		Username        string
		Issued, Expires time.Time
	}
	if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil || out.Username != "ada" || out.Expires.Sub(out.Issued) != 12*time.Hour {
		t.Fatalf("profile JSON %q: %+v %v", w.Body.String(), out, err)
	}
	if w.Header().Get("Cache-Control") != "no-store" {
		t.Error("JSON profile without no-store")
	}
}

func TestProfileWithoutSession(t *testing.T) {
	a := newApp(t, "", nil)
	tests := []struct {
		accept, location, body string
		status                 int
	}{
		{"text/html,application/xhtml+xml,*/*;q=0.8", "/login?next=%2Fprofile", "", 303},
		{"application/json", "", `{"error":"sign in required"}`, 401},
		{"*/*", "", "sign in required\n", 401},
		{"", "", "sign in required\n", 401},
	}
	for _, tt := range tests {
		w := a.do(request{target: "/profile", accept: tt.accept})
		if w.Code != tt.status || w.Header().Get("Location") != tt.location || (tt.body != "" && w.Body.String() != tt.body) {
			t.Errorf("Accept %q: %d Location %q body %q", tt.accept, w.Code, w.Header().Get("Location"), w.Body.String())
		}
		checkCommonHeaders(t, w)
	}
}

func TestBadCookies(t *testing.T) {
	a := newApp(t, "", func(h *Handler) { h.SessionLifetime = 0 })
	good := a.login("ada", adaPassword, false)
	raw, _ := base64.RawURLEncoding.DecodeString(good.Value)
	flip := func(i int) string {
		b := append([]byte(nil), raw...)
		b[i] ^= 1
		return base64.RawURLEncoding.EncodeToString(b)
	}
	other := newApp(t, "", func(h *Handler) { h.SecretKeys = []string{base64.StdEncoding.EncodeToString(randomBytes(32))} })
	otherCookie := other.login("ada", adaPassword, false)
	for name, value := range map[string]string{
		"empty":        "",
		"garbage":      "not-a-cookie",
		"truncated":    good.Value[:len(good.Value)-4],
		"key id":       flip(0),
		"nonce":        flip(6),
		"ciphertext":   flip(len(raw) - 20),
		"tag":          flip(len(raw) - 1),
		"other key":    otherCookie.Value,
		"padded":       good.Value + "==",
		"huge":         strings.Repeat("A", 5000),
		"only key id":  good.Value[:6],
		"standard b64": base64.StdEncoding.EncodeToString(raw),
	} {
		w := a.do(request{target: "/profile", cookie: &http.Cookie{Name: "miniapp_session", Value: value}})
		if w.Code != 401 {
			t.Errorf("%s cookie: status %d, want 401", name, w.Code)
		}
	}
	if w := a.do(request{target: "/profile", cookie: good}); w.Code != 200 {
		t.Fatalf("good cookie: %d", w.Code)
	}
	// the cookie of the plain-HTTP name is not read over HTTPS
	if w := a.do(request{target: "/profile", cookie: good, https: true}); w.Code != 401 {
		t.Errorf("unprefixed cookie over HTTPS: %d", w.Code)
	}
}

func TestExpiry(t *testing.T) {
	a := newApp(t, "", func(h *Handler) { h.IdleTimeout = caddy.Duration(24 * time.Hour) })
	c := a.login("ada", adaPassword, false)
	a.advance(12*time.Hour - 2*time.Second)
	if w := a.do(request{target: "/profile", cookie: c}); w.Code != 200 {
		t.Fatalf("before expiry: %d", w.Code)
	}
	a.advance(3 * time.Second)
	if w := a.do(request{target: "/profile", cookie: c}); w.Code != 401 {
		t.Fatalf("after expiry: %d", w.Code)
	}
}

func TestNewSessionEachLogin(t *testing.T) {
	a := newApp(t, "", nil)
	c1 := a.login("ada", adaPassword, false)
	c2 := a.login("ada", adaPassword, false)
	s1, _ := a.open(c1.Value)
	s2, _ := a.open(c2.Value)
	if s1 == nil || s2 == nil || s1.ID == s2.ID {
		t.Fatal("two logins share a session ID")
	}
	// a login while signed in also makes a new ID
	w := a.do(request{method: "POST", target: "/login", contentType: form, cookie: c1, body: "username=ada&password=" + adaPassword})
	s3, _ := a.open(sessionCookie(t, w).Value)
	if s3 == nil || s3.ID == s1.ID {
		t.Fatal("login kept the old session ID")
	}
}

func TestLogout(t *testing.T) {
	dir := t.TempDir()
	a := newApp(t, dir, nil)
	for _, https := range []bool{false, true} {
		c := a.login("ada", adaPassword, https)
		w := a.do(request{method: "POST", target: "/logout", cookie: c, https: https})
		if w.Code != 303 || w.Header().Get("Location") != "/login" {
			t.Fatalf("logout: %d %q", w.Code, w.Header().Get("Location"))
		}
		cleared := sessionCookie(t, w)
		if cleared.Name != c.Name || cleared.Path != "/" || cleared.Secure != https || cleared.MaxAge != -1 || cleared.Value != "" {
			t.Errorf("clearing cookie %+v does not match %+v", cleared, c)
		}
		checkCommonHeaders(t, w)
		if !strings.Contains(w.Header().Get("Set-Cookie"), "Max-Age=0") {
			t.Errorf("Set-Cookie %q lacks Max-Age=0", w.Header().Get("Set-Cookie"))
		}
		if w := a.do(request{target: "/profile", cookie: c, https: https}); w.Code != 401 {
			t.Errorf("replayed cookie after logout: %d", w.Code)
		}
	}
	c := a.login("ada", adaPassword, false)
	a.do(request{method: "POST", target: "/logout", cookie: c})

	// a restart: the old handler goes, a new one reads the same storage
	if err := a.h.Cleanup(); err != nil {
		t.Fatal(err)
	}
	b := newApp(t, dir, nil)
	if w := b.do(request{target: "/profile", cookie: c}); w.Code != 401 {
		t.Errorf("replay after restart: %d", w.Code)
	}
	fresh := b.login("ada", adaPassword, false)
	if w := b.do(request{target: "/profile", cookie: fresh}); w.Code != 200 {
		t.Errorf("new login after restart: %d", w.Code)
	}
}

func TestLogoutCrossSite(t *testing.T) {
	a := newApp(t, "", nil)
	c := a.login("ada", adaPassword, false)
	w := a.do(request{method: "POST", target: "/logout", cookie: c, header: map[string]string{"Sec-Fetch-Site": "cross-site"}})
	if w.Code != 403 {
		t.Fatalf("cross-site logout: %d", w.Code)
	}
	if w := a.do(request{target: "/profile", cookie: c}); w.Code != 200 {
		t.Errorf("refused logout ended the session: %d", w.Code)
	}
}

func TestKeyRotation(t *testing.T) {
	oldKey, newKey := testKey, base64.URLEncoding.EncodeToString(randomBytes(48))
	a := newApp(t, "", nil)
	c := a.login("ada", adaPassword, false)
	b := newApp(t, "", func(h *Handler) { h.SecretKeys = []string{newKey, oldKey} })
	if w := b.do(request{target: "/profile", cookie: c}); w.Code != 200 {
		t.Fatalf("old-key cookie after rotation: %d", w.Code)
	}
	fresh := b.login("ada", adaPassword, false)
	if w := a.do(request{target: "/profile", cookie: fresh}); w.Code != 401 {
		t.Errorf("a handler without the new key accepted its cookie: %d", w.Code)
	}
	dropped := newApp(t, "", func(h *Handler) { h.SecretKeys = []string{newKey} })
	if w := dropped.do(request{target: "/profile", cookie: c}); w.Code != 401 {
		t.Errorf("cookie of a removed key accepted: %d", w.Code)
	}
}

func TestKeysFromStorage(t *testing.T) {
	dir := t.TempDir()
	a := newApp(t, dir, func(h *Handler) { h.SecretKeys = nil })
	c := a.login("ada", adaPassword, false)
	b := newApp(t, dir, func(h *Handler) { h.SecretKeys = nil })
	if w := b.do(request{target: "/profile", cookie: c}); w.Code != 200 {
		t.Fatalf("second handler on the same storage rejected the cookie: %d", w.Code)
	}
	info, err := os.Stat(filepath.Join(dir, "miniapp", "keys.json"))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("keys file: %v %v", err, info)
	}
	other := newApp(t, "", func(h *Handler) { h.SecretKeys = nil })
	if w := other.do(request{target: "/profile", cookie: c}); w.Code != 401 {
		t.Errorf("handler with other storage accepted the cookie: %d", w.Code)
	}
}

func TestRemovedUser(t *testing.T) {
	a := newApp(t, "", nil)
	c := a.login("grace", gracePassword, false)
	b := newApp(t, "", func(h *Handler) { h.Accounts = h.Accounts[:1] })
	if w := b.do(request{target: "/profile", cookie: c}); w.Code != 401 {
		t.Errorf("session of a removed user accepted: %d", w.Code)
	}
}

func TestSealOpen(t *testing.T) {
	kr, err := newKeyring([][]byte{randomBytes(32)})
	if err != nil {
		t.Fatal(err)
	}
	s := &session{User: "ada é", ID: [16]byte(randomBytes(16)), Counter: 7,
		Issued: time.Unix(100, 0), Expires: time.Unix(200, 0), LastSeen: time.Unix(150, 0)}
	v := kr.seal(s, "c", "h")
	got, err := kr.open(v, "c", "h")
	if err != nil || got.User != s.User || got.ID != s.ID || got.Counter != 7 ||
		!got.Issued.Equal(s.Issued) || !got.Expires.Equal(s.Expires) || !got.LastSeen.Equal(s.LastSeen) {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	if _, err := kr.open(v, "c", "other.example"); err == nil {
		t.Error("a cookie opened for another host")
	}
	if _, err := kr.open(v, "d", "h"); err == nil {
		t.Error("a cookie opened under another cookie name")
	}
	if v2 := kr.seal(s, "c", "h"); v2 == v {
		t.Error("two seals of one session are equal: the nonce is not random")
	}
}

func TestDecodeSecret(t *testing.T) {
	key := randomBytes(32)
	for _, ok := range []string{
		base64.StdEncoding.EncodeToString(key), base64.RawStdEncoding.EncodeToString(key),
		base64.URLEncoding.EncodeToString(key), base64.RawURLEncoding.EncodeToString(key),
	} {
		if got, err := decodeSecret(ok); err != nil || string(got) != string(key) {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "short", base64.StdEncoding.EncodeToString(key[:31]), "!!!!" + base64.StdEncoding.EncodeToString(key)} {
		_, err := decodeSecret(bad)
		if err == nil {
			t.Errorf("%q accepted", bad)
		} else if bad != "" && strings.Contains(err.Error(), bad) {
			t.Errorf("error repeats the key: %v", err)
		}
	}
}

// lockingStorage is a file storage whose Lock fails the first failures
// times, as the file storage does when it reads a lock file that another
// instance is still writing.
type lockingStorage struct {
	*certmagic.FileStorage
	failures int
	onFail   func()
}

func (s *lockingStorage) Lock(ctx context.Context, name string) error {
	if s.failures > 0 {
		s.failures--
		if s.onFail != nil {
			s.onFail()
		}
		return errors.New("decoding lockfile contents: unexpected EOF")
	}
	return s.FileStorage.Lock(ctx, name)
}

func TestCreateKeysRetriesLock(t *testing.T) {
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	flaky := &lockingStorage{FileStorage: &certmagic.FileStorage{Path: t.TempDir()}, failures: 2}
	if _, err := loadOrCreateKeyring(ctx, flaky, zap.NewNop()); err != nil || flaky.failures != 0 {
		t.Fatalf("key set not made after two failed locks: %v", err)
	}

	// the other instance makes the key set while this one's lock fails
	other := &certmagic.FileStorage{Path: t.TempDir()}
	theirs, err := loadOrCreateKeyring(ctx, other, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	data, _ := other.Load(ctx, keysStorage)
	_ = other.Delete(ctx, keysStorage)
	racing := &lockingStorage{FileStorage: other, failures: 100, onFail: func() { _ = other.Store(ctx, keysStorage, data) }}
	ours, err := loadOrCreateKeyring(ctx, racing, zap.NewNop())
	if err != nil || ours.keys[0].id != theirs.keys[0].id {
		t.Fatalf("did not take the other instance's key set: %v", err)
	}
	if _, err := loadOrCreateKeyring(ctx, &lockingStorage{FileStorage: &certmagic.FileStorage{Path: t.TempDir()}, failures: 100}, zap.NewNop()); err == nil {
		t.Error("no error when the lock never succeeds")
	}
}
