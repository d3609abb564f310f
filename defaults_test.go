package miniapp

import (
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
)

// TestDefaultsEmpty: an empty config gets every documented default, and
// then validates.
func TestDefaultsEmpty(t *testing.T) {
	var h Handler
	h.setDefaults()
	if time.Duration(h.SessionLifetime) != 12*time.Hour || h.CookieName != "miniapp_session" || time.Duration(h.IdleTimeout) != time.Hour ||
		h.LoginLimit == nil || h.LoginLimit.Failures != 5 || time.Duration(h.LoginLimit.Window) != time.Minute ||
		time.Duration(h.RevocationSync) != time.Second || h.MaxBodySize != 64<<10 || h.Realm != "miniapp" || h.SecondFactor != "optional" {
		t.Errorf("defaults %+v, login limit %+v", h, h.LoginLimit)
	}
	// what stays empty has a meaning of its own
	if h.CookieDomain != "" || h.LoginURL != "" || h.SecretKeys != nil || h.Passkeys != nil || h.PasskeyRPID != "" || h.TOTPIssuer != "" ||
		h.Protect != nil || h.StoreRaw != nil {
		t.Errorf("a field without a default was set: %+v", h)
	}
	if err := h.Validate(); err != nil {
		t.Errorf("the defaults do not validate: %v", err)
	}
}

// TestDefaultsKept: a field that is set keeps its value, a negative one
// too (Validate refuses it, naming the field); the login limit's parts
// are filled in one by one.
func TestDefaultsKept(t *testing.T) {
	off := false
	h := Handler{SessionLifetime: caddy.Duration(time.Hour), CookieName: "sid", IdleTimeout: caddy.Duration(-time.Minute),
		LoginLimit: &LoginLimit{Failures: 3}, RevocationSync: caddy.Duration(5 * time.Second), MaxBodySize: -1, Realm: "staff",
		SecondFactor: "required", Passkeys: &off}
	limit := h.LoginLimit
	h.setDefaults()
	if time.Duration(h.SessionLifetime) != time.Hour || h.CookieName != "sid" || time.Duration(h.IdleTimeout) != -time.Minute ||
		h.LoginLimit != limit || h.LoginLimit.Failures != 3 || time.Duration(h.LoginLimit.Window) != time.Minute ||
		time.Duration(h.RevocationSync) != 5*time.Second || h.MaxBodySize != -1 || h.Realm != "staff" || h.SecondFactor != "required" ||
		h.Passkeys != &off {
		t.Errorf("after defaults %+v, login limit %+v", h, h.LoginLimit)
	}
	if err := h.Validate(); err == nil || !strings.Contains(err.Error(), "idle_timeout") {
		t.Errorf("a negative idle_timeout: %v", err)
	}
	window := Handler{LoginLimit: &LoginLimit{Window: caddy.Duration(time.Hour)}}
	window.setDefaults()
	if window.LoginLimit.Failures != 5 || time.Duration(window.LoginLimit.Window) != time.Hour {
		t.Errorf("a window alone: %+v", window.LoginLimit)
	}
	// twice is once
	again := h
	again.setDefaults()
	if again.CookieName != h.CookieName || again.LoginLimit != h.LoginLimit || again.Realm != h.Realm {
		t.Errorf("defaults applied twice changed the config: %+v", again)
	}
}

// TestValidCookieName: what net/http can send as a cookie's name (an
// RFC 6265 token), and nothing else.
func TestValidCookieName(t *testing.T) {
	for name, want := range map[string]bool{
		"miniapp_session":    true,
		"sid":                true,
		"a-b.c~d!#$%&'*+^`|": true,
		"UPPER123":           true,
		"":                   false,
		"a;b":                false,
		"a b":                false,
		"a=b":                false,
		"a,b":                false,
		`a"b`:                false,
		"a\tb":               false,
		"a\x00b":             false,
		"a\x7fb":             false,
		"(a)":                false,
		"a/b":                false,
		"a@b":                false,
		"é":                  false,
		"{a}":                false,
		"a\\b":               false,
	} {
		if got := validCookieName(name); got != want {
			t.Errorf("validCookieName(%q) = %v, want %v", name, got, want)
		}
	}
}
