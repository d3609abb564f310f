package miniapp

import (
	"html/template"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/routes"
	"github.com/caddy-miniapp/miniapp/internal/sso"
	"github.com/caddy-miniapp/miniapp/internal/web"
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
)

// forwarded is a check of /miniapp/auth as Caddy's forward_auth sends
// it for a request to uri on host.
func forwarded(c *http.Cookie, host, uri, accept string) request {
	return request{target: routes.AuthPath, cookie: c, accept: accept, https: true, header: map[string]string{
		"Host": "auth.example.test", "X-Forwarded-Proto": "https", "X-Forwarded-Host": host, "X-Forwarded-Uri": uri}}
}

func TestAuthEndpoint(t *testing.T) {
	a := domainApp(t, "", "https://auth.example.test/login")
	login := func(user, password string) *http.Cookie {
		return sessionCookie(t, a.do(request{method: "POST", target: "/login", contentType: form, body: "username=" + user + "&password=" + password,
			https: true, header: map[string]string{"Host": "auth.example.test"}}))
	}
	ada, grace := login("ada", adaPassword), login("grace", gracePassword)

	w := a.do(forwarded(ada, "app.example.test", "/page?x=1", "text/html"))
	if w.Code != 200 || w.Body.Len() != 0 || w.Header().Get("Remote-User") != "ada" || w.Header().Get("Remote-Groups") != "admins,staff" ||
		w.Header().Get("Remote-Email") != "ada@example.test" || w.Header().Get("Remote-Name") != "Ada Lovelace" || w.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("a valid session: %d %v %q", w.Code, w.Header(), w.Body)
	}
	if len(w.Result().Cookies()) != 0 {
		t.Error("the endpoint set a cookie, which forward_auth would never pass on")
	}
	w = a.do(forwarded(grace, "app.example.test", "/", ""))
	if _, has := w.Header()["Remote-Email"]; w.Code != 200 || has || w.Header().Get("Remote-Groups") != "" {
		t.Errorf("a user without email or groups: %d %v", w.Code, w.Header())
	}

	// without a session: browsers to the login site with next, others 401
	w = a.do(forwarded(nil, "app.example.test", "/page?x=1", "text/html,application/xhtml+xml"))
	if loc := w.Header().Get("Location"); w.Code != 302 || loc != "https://auth.example.test/login?next="+url.QueryEscape("https://app.example.test/page?x=1") {
		t.Errorf("a browser without a session: %d to %q", w.Code, loc)
	}
	for _, accept := range []string{"", "application/json", "*/*"} {
		if w := a.do(forwarded(nil, "app.example.test", "/", accept)); w.Code != 401 || w.Header().Get("Location") != "" {
			t.Errorf("Accept %q without a session: %d %q", accept, w.Code, w.Header().Get("Location"))
		}
	}
	// by Accept alone, never by User-Agent
	r := forwarded(nil, "app.example.test", "/", "application/json")
	r.header["User-Agent"] = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
	if w := a.do(r); w.Code != 401 {
		t.Errorf("a browser's User-Agent asking for JSON: %d", w.Code)
	}
	// a host outside the cookie domain: no session there, and next is /profile
	w = a.do(forwarded(ada, "evil.example.net", "/steal", "text/html"))
	if loc := w.Header().Get("Location"); w.Code != 302 || loc != "https://auth.example.test/login?next=%2Fprofile" {
		t.Errorf("a host outside the domain: %d to %q", w.Code, loc)
	}

	// nginx: 401 with the login page in Location, from X-Original-URL
	nginx := request{target: routes.AuthPath, cookie: nil, accept: "text/html", header: map[string]string{
		"Host": "127.0.0.1:9000", "X-Original-URL": "https://app.example.test/doc?id=7"}}
	w = a.do(nginx)
	if loc := w.Header().Get("Location"); w.Code != 401 || loc != "https://auth.example.test/login?next="+url.QueryEscape("https://app.example.test/doc?id=7") {
		t.Errorf("nginx without a session: %d to %q", w.Code, loc)
	}
	nginx.cookie = ada
	if w := a.do(nginx); w.Code != 200 || w.Header().Get("Remote-User") != "ada" {
		t.Errorf("nginx with a session: %d", w.Code)
	}

	// rules
	for query, want := range map[string][2]int{
		"group=admins":                      {200, 403},
		"group=admins,staff":                {200, 403},
		"group=staff&group=admins":          {200, 403},
		"group=staff&group=nobody":          {403, 403},
		"user=grace,bob":                    {403, 200},
		"user=ada&group=admins":             {200, 403},
		"group=":                            {400, 400},
		"x=1&page=2":                        {200, 200},
		"group=%zz":                         {400, 400},
		"user=" + strings.Repeat("x", 2000): {400, 400},
	} {
		for i, c := range []*http.Cookie{ada, grace} {
			r := forwarded(c, "app.example.test", "/", "text/html")
			r.target = routes.AuthPath + "?" + query
			if w := a.do(r); w.Code != want[i] {
				t.Errorf("%s for %s: %d, want %d", query, []string{"ada", "grace"}[i], w.Code, want[i])
			}
		}
	}
	if w := a.do(request{method: "POST", target: routes.AuthPath}); w.Code != 405 {
		t.Errorf("POST: %d", w.Code)
	}

	// logout ends access on every site at once
	a.do(request{method: "POST", target: "/logout", cookie: ada, https: true, header: map[string]string{"Host": "auth.example.test"}})
	if w := a.do(forwarded(ada, "app.example.test", "/", "")); w.Code != 401 {
		t.Errorf("after logout: %d", w.Code)
	}
}

// TestAuthKeepsSessionsAlive: a user who only uses apps behind the
// endpoint is not cut off at idle_timeout: the endpoint records the
// session's use, at most once per half idle window, and every session
// check honours it.
func TestAuthKeepsSessionsAlive(t *testing.T) {
	a := domainApp(t, "", "https://auth.example.test/login", func(h *Handler) { h.IdleTimeout = caddy.Duration(10 * time.Minute) })
	c := sessionCookie(t, a.do(request{method: "POST", target: "/login", contentType: form, body: "username=ada&password=" + adaPassword,
		https: true, header: map[string]string{"Host": "auth.example.test"}}))
	for range 6 {
		a.advance(4 * time.Minute)
		if w := a.do(forwarded(c, "app.example.test", "/", "")); w.Code != 200 {
			t.Fatalf("an app used every 4 minutes: %d", w.Code)
		}
	}
	// one write per half idle window: at 8, 16 and 24 minutes
	if n := journalLines(t, a, "u "); n != 3 {
		t.Errorf("%d writes of the last use in 24 minutes, want 3", n)
	}
	// 24 minutes after the cookie was last renewed, with a 10-minute idle window
	if w := a.do(request{target: "/profile", cookie: c, https: true, header: map[string]string{"Host": "auth.example.test"}}); w.Code != 200 {
		t.Errorf("the login site after the apps kept the session alive: %d", w.Code)
	}
	a.advance(11 * time.Minute)
	if w := a.do(forwarded(c, "app.example.test", "/", "")); w.Code != 401 {
		t.Errorf("idle for longer than idle_timeout: %d", w.Code)
	}
}

// journalLines counts the lines of the app's storage journal that begin
// with prefix.
func journalLines(t *testing.T, a *testApp, prefix string) int {
	t.Helper()
	n := 0
	root := filepath.Join(a.storage.(*certmagic.FileStorage).Path, "miniapp")
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.Contains(path, "/journal/") {
			return err
		}
		data, err := os.ReadFile(path)
		for line := range strings.Lines(string(data)) {
			if strings.HasPrefix(line, prefix) {
				n++
			}
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestAuthRulesFromEndpointOnly: rules come from the endpoint's own
// query alone, and every one applies: the app's query carried in
// X-Forwarded-Uri or X-Original-URL, equal to the endpoint's or not,
// never lifts a rule; rules repeated, percent-encoded or in another case
// only tighten or are ignored; a parameter that is no rule is logged
// once by name.
func TestAuthRulesFromEndpointOnly(t *testing.T) {
	a := domainApp(t, "", "https://auth.example.test/login")
	login := func(user, password string) *http.Cookie {
		return sessionCookie(t, a.do(request{method: "POST", target: "/login", contentType: form, body: "username=" + user + "&password=" + password,
			https: true, header: map[string]string{"Host": "auth.example.test"}}))
	}
	grace := login("grace", gracePassword)
	for _, rule := range []string{"group=admins", "user=ada", "factor=2"} {
		for _, query := range []string{rule, rule + "&" + rule, strings.ToUpper(rule), "x=1&" + rule, strings.Replace(rule, "=", "%3D", 1)} {
			caddy := forwarded(grace, "app.example.test", "/secret?"+query, "")
			caddy.target = routes.AuthPath + "?" + rule
			if w := a.do(caddy); w.Code != 403 {
				t.Errorf("?%s with X-Forwarded-Uri /secret?%s: %d, want 403", rule, query, w.Code)
			}
			nginx := request{target: routes.AuthPath + "?" + rule, cookie: grace, header: map[string]string{
				"Host": "127.0.0.1:9000", "X-Original-URL": "https://app.example.test/secret?" + query, "X-Forwarded-Uri": "/secret?" + query}}
			if w := a.do(nginx); w.Code != 403 {
				t.Errorf("?%s with X-Original-URL ...?%s: %d, want 403", rule, query, w.Code)
			}
		}
	}
	// percent-encoded names and values are rules too: they can only tighten
	for _, query := range []string{"gr%6Fup=admins", "group=%61dmins", "us%65r=ada", "factor=%32"} {
		r := forwarded(grace, "app.example.test", "/", "")
		r.target = routes.AuthPath + "?" + query
		if w := a.do(r); w.Code != 403 {
			t.Errorf("?%s: %d, want 403", query, w.Code)
		}
	}
	// a name that is no rule is ignored, and logged once
	for range 3 {
		r := forwarded(grace, "app.example.test", "/", "")
		r.target = routes.AuthPath + "?groups=admins&Group=admins"
		if w := a.do(r); w.Code != 200 {
			t.Errorf("?groups=admins&Group=admins: %d, want 200 (no rule)", w.Code)
		}
	}
	for _, name := range []string{"groups", "Group"} {
		if n := a.logs.FilterField(zap.String("parameter", name)).Len(); n != 1 {
			t.Errorf("the parameter %q was logged %d times, want once", name, n)
		}
	}
	// a client's flood of names: at most 32 an hour are named, the rest
	// counted, and an hour later the operator's typo is named again
	for i := range 40 {
		r := forwarded(grace, "app.example.test", "/", "")
		r.target = routes.AuthPath + "?flood" + strconv.Itoa(i) + "=1"
		a.do(r)
	}
	if n := a.logs.FilterMessageSnippet("is no rule and was ignored").Len(); n != sso.MaxIgnored {
		t.Errorf("%d names logged in an hour, want %d", n, sso.MaxIgnored)
	}
	a.advance(sso.IgnoredWindow)
	r := forwarded(grace, "app.example.test", "/", "")
	r.target = routes.AuthPath + "?groups=admins"
	a.do(r)
	if a.logs.FilterField(zap.String("parameter", "groups")).Len() != 2 || a.logs.FilterField(zap.Int("not_named", 10)).Len() != 1 {
		t.Errorf("an hour later:\n%s", a.logText())
	}
}

// TestAuthEdges: an app's query is no rule unless it is the endpoint's; Accept naming HTML with
// JSON is a browser; behind nginx only a browser gets Location; an
// X-Original-URL that hides another host, or is no URL, has no session;
// without cookie_domain next is a path of this site; a next too long for
// the login page is /profile.
func TestAuthEdges(t *testing.T) {
	a := domainApp(t, "", "https://auth.example.test/login")
	ada := sessionCookie(t, a.do(request{method: "POST", target: "/login", contentType: form, body: "username=ada&password=" + adaPassword,
		https: true, header: map[string]string{"Host": "auth.example.test"}}))
	app := forwarded(ada, "app.example.test", "/search?user=bob", "")
	app.target = routes.AuthPath + "?"
	if w := a.do(app); w.Code != 200 {
		t.Errorf("the app's own query taken for rules: %d", w.Code)
	}
	// forward_auth with a uri without ? passes the app's query on: it is read as rules
	app.target = routes.AuthPath + "?user=bob"
	if w := a.do(app); w.Code != 403 {
		t.Errorf("the endpoint's query that equals the app's: %d, want 403", w.Code)
	}
	if w := a.do(forwarded(nil, "app.example.test", "/", "text/html, application/json")); w.Code != 302 {
		t.Errorf("Accept with HTML and JSON alike: %d, want 302", w.Code)
	}
	nginx := func(c *http.Cookie, original, accept string) *httptest.ResponseRecorder {
		return a.do(request{target: routes.AuthPath, cookie: c, accept: accept, header: map[string]string{"Host": "127.0.0.1:9000", "X-Original-URL": original}})
	}
	if w := nginx(nil, "https://app.example.test/x", "application/json"); w.Code != 401 || w.Header().Get("Location") != "" {
		t.Errorf("an API client behind nginx: %d %q", w.Code, w.Header().Get("Location"))
	}
	for _, original := range []string{"https://evil.net#.example.test/", "https://evil.net?.example.test/", "https://u@app.example.test/", "ftp://app.example.test/", "https:///x", "not a url"} {
		if w := nginx(ada, original, "text/html"); w.Code != 401 || w.Header().Get("Remote-User") != "" {
			t.Errorf("X-Original-URL %q: %d %v", original, w.Code, w.Header())
		}
	}
	long := forwarded(nil, "app.example.test", "/"+strings.Repeat("a", 2000), "text/html")
	if w := a.do(long); !strings.HasSuffix(w.Header().Get("Location"), "?next=%2Fprofile") {
		t.Errorf("a next too long: %q", w.Header().Get("Location"))
	}
	single := newApp(t, "", nil)
	w := single.do(request{target: routes.AuthPath, accept: "text/html", header: map[string]string{
		"Host": "site.test", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "site.test", "X-Forwarded-Uri": "/docs?page=2"}})
	if loc := w.Header().Get("Location"); w.Code != 302 || loc != "/login?next=%2Fdocs%3Fpage%3D2" {
		t.Errorf("without cookie_domain: %d to %q", w.Code, loc)
	}
}

// TestAuthNotAllowedOneSite: without cookie_domain the refused page is
// this site's own: its "sign in as someone else" is a same-origin form
// that signs out and goes on to the login page with next.
func TestAuthNotAllowedOneSite(t *testing.T) {
	a := newApp(t, "", nil)
	grace := a.login("grace", gracePassword, false)
	r := request{target: routes.AuthPath + "?group=admins", cookie: grace, accept: "text/html", header: map[string]string{
		"Host": "example.com", "X-Forwarded-Proto": "http", "X-Forwarded-Host": "example.com", "X-Forwarded-Uri": "/admin?x=1"}}
	w := a.do(r)
	next := "/login?next=" + url.QueryEscape("/admin?x=1")
	body := w.Body.String()
	if w.Code != 403 || !strings.Contains(body, `<form method="post" action="/logout">`) || !strings.Contains(body, `name="next" value="`+template.HTMLEscapeString(next)+`"`) ||
		!strings.Contains(body, `href="`+web.StylePath+`"`) {
		t.Fatalf("the refused page: %d\n%s", w.Code, body)
	}
	w = a.do(request{method: "POST", target: "/logout", contentType: form, cookie: grace, body: "next=" + url.QueryEscape(next)})
	if w.Code != 303 || w.Header().Get("Location") != next {
		t.Errorf("signing out to sign in as someone else: %d to %q", w.Code, w.Header().Get("Location"))
	}
}
