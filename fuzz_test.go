package miniapp

import (
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzRequest sends arbitrary queries, bodies and headers to every route,
// half of them with a fresh session of ada, whose second factor is set
// up: the handler must never panic, and answer 2xx, 3xx or 4xx.
func FuzzRequest(f *testing.F) {
	f.Add("GET", "/hello", "name=Ada", "", "", "")
	f.Add("POST", "/hello", "name=%zz", "name=B", form, "application/json")
	f.Add("POST", "/hello", "", `{"name":"\u0000"}`, jsonType, "")
	f.Add("POST", "/login", "next=//evil", "username=ada&password=x&next=%2F%2Fe", form, "text/html")
	f.Add("POST", "/login", "", `{"username":"ada","password":"`+adaPassword+`"}`, jsonType, "")
	f.Add("GET", "/profile", "a;b", "", "", "text/html;q=x")
	f.Add("POST", "/logout", "", "all=1", form, "*/*")
	f.Add("PUT", "/hello", "name=%ff", "[[[[", "text/plain", "application/json;q=2")
	f.Add("POST", "/login", "", "code=123456", form, "application/json")
	f.Add("POST", "/profile/totp", "", "action=disable&code=abcd-efgh-jkmn", form, "")
	f.Add("POST", "/profile/totp", "", `{"enrollment":"AAAA","code":"000000"}`, jsonType, "application/json")
	f.Add("GET", "/miniapp/auth", "factor=2&group=x", "", "", "text/html")
	a := newApp(f, "", nil)
	a.enrol("ada", adaPassword)
	f.Fuzz(func(t *testing.T, method, path, query, body, ctype, accept string) {
		if !validMethod(method) {
			method = "POST"
		}
		a.t = t
		r := httptest.NewRequest("GET", "/", nil)
		r.Method = method
		r.URL.Path = path
		r.URL.RawQuery = query
		r.Body = httpBody(body)
		r.ContentLength = int64(len(body))
		r.Header.Set("Content-Type", ctype)
		r.Header.Set("Accept", accept)
		if len(body)%2 == 1 {
			s := a.newSession("ada")
			s.Factors = 2
			r.AddCookie(a.seal(s))
		}
		r = withCaddyContext(r, false)
		w := httptest.NewRecorder()
		if err := a.h.ServeHTTP(w, r, nextHandler); err != nil {
			t.Fatalf("error %v", err)
		}
		if w.Code < 200 || w.Code >= 500 {
			t.Fatalf("%s %s?%s: status %d", method, path, query, w.Code)
		}
	})
}

func validMethod(m string) bool {
	if m == "" {
		return false
	}
	for _, c := range m {
		if c < '!' || c > '~' || strings.ContainsRune("()<>@,;:\\\"/[]?={}", c) {
			return false
		}
	}
	return true
}

func httpBody(s string) *readCloser { return &readCloser{strings.NewReader(s)} }

type readCloser struct{ *strings.Reader }

func (readCloser) Close() error { return nil }
