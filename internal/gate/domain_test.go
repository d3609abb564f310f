package gate

import (
	"strings"
	"testing"
)

func TestCookieDomainConfig(t *testing.T) {
	for _, tc := range []struct{ domain, login, want string }{
		{"com", "https://auth.com/login", "public suffix"},
		{"co.uk", "https://auth.co.uk/login", "public suffix"},
		{"github.io", "https://auth.github.io/login", "public suffix"},
		{"192.0.2.1", "https://192.0.2.1/login", "IP address"},
		{"localhost", "http://localhost/login", "localhost"},
		{"example.com", "", "needs login_url"},
		{"example.com", "/login", "needs login_url"},
		{"example.com", "https://auth.example.net/login", "must be on cookie_domain"},
		{"example.com", "https://example.com.evil.net/login", "must be on cookie_domain"},
		{"", "javascript:alert(1)", "must be an http or https URL"},
		{"", "//evil.net/login", "must be an http or https URL"},
		{"example.com", "https://auth.example.com/login?x=1", "without query"},
		{"example.com.", "https://auth.example.com/login", "not a domain name"},
		{"example.com:443", "https://auth.example.com/login", "not a domain name"},
		{"*.example.com", "https://auth.example.com/login", "not a domain name"},
		{"exa mple.com", "https://auth.example.com/login", "not a domain name"},
		{"[::1]", "https://auth.example.com/login", "IP address"},
		// what browsers read as IPv4 addresses, which net.ParseIP does not
		{"127.1", "http://127.1/login", "IP address"},
		{"0x7f.0.0.1", "http://0x7f.0.0.1/login", "IP address"},
		{"0X7F.1", "http://0x7f.1/login", "IP address"},
		{"2130706433", "http://2130706433/login", "IP address"},
		{"017700000001", "http://017700000001/login", "IP address"},
		{"example.0x10", "http://a.example.0x10/login", "IP address"},
	} {
		if _, err := NewDomain(tc.domain, tc.login, "miniapp_session"); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("cookie_domain %q, login_url %q: %v, want %q", tc.domain, tc.login, err, tc.want)
		}
	}
	d, err := NewDomain(".Example.COM", "https://auth.example.com/login", "sid")
	if err != nil || d.Name != "example.com" || d.Cookie != "__Secure-sid" || !d.Secure ||
		!strings.Contains(d.CSP, "form-action 'self' https://example.com:* https://*.example.com:*;") {
		t.Errorf("a valid domain: %+v %v", d, err)
	}
	plain, err := NewDomain("example.test", "http://auth.example.test:8080/login", "sid")
	if err != nil || plain.Cookie != "sid" || plain.Secure {
		t.Errorf("a plain-HTTP login site: %+v %v", plain, err)
	}
}

// TestSafeNext: with a cookie domain, an absolute next of a host of the
// domain passes, https only from a page served over HTTPS; without one,
// nothing absolute.
func TestSafeNext(t *testing.T) {
	d, err := NewDomain("example.test", "https://auth.example.test/login", "sid")
	if err != nil {
		t.Fatal(err)
	}
	for next, want := range map[string]string{
		"https://app.example.test/a?b=c#d":          "https://app.example.test/a?b=c#d",
		"https://example.test:8443/":                "https://example.test:8443/",
		"/profile":                                  "/profile",
		"http://app.example.test/":                  "",
		"https://example.test.evil.net/":            "",
		"https://evilexample.test/":                 "",
		"https://example.test@evil.net/":            "",
		"https://app.example.test\\@evil.net/":      "",
		"https:\\\\evil.net":                        "",
		"javascript://app.example.test/%0aalert(1)": "",
		"ftp://app.example.test/":                   "",
		"//app.example.test/":                       "",
		"https://app.example.test/\r\nX: y":         "",
	} {
		if got := d.SafeNext(next, true); got != want {
			t.Errorf("next %q: %q, want %q", next, got, want)
		}
	}
	if got := d.SafeNext("http://app.example.test/", false); got != "http://app.example.test/" {
		t.Errorf("http next from a plain-HTTP login page: %q", got)
	}
	single, _ := NewDomain("", "", "sid")
	if got := single.SafeNext("https://app.example.test/", true); got != "" {
		t.Errorf("an absolute next without cookie_domain: %q", got)
	}
}

// TestEndsInNumber: a last label of digits or of 0x and hex digits is an
// IPv4 address to a browser; any other is a name.
func TestEndsInNumber(t *testing.T) {
	for host, want := range map[string]bool{"127.1": true, "0x7f.0.0.1": true, "2130706433": true, "a.0x": true, "a.1.": true,
		"example.com": false, "0xample.com": false, "a.123abc": false, "a.0xg1": false, "x1.example.com": false} {
		if got := endsInNumber(host); got != want {
			t.Errorf("%q: %v, want %v", host, got, want)
		}
	}
}
