package signin

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/session"
)

// TestTrustBrowser: a code step with trust_browser trusts the browser
// (its cookie, the account's record); a password there then signs in
// without the code, as two factors for access but never for a step-up;
// the cookie is the account's alone, and ending the trusts ends it; with
// remember_second_factor off nothing is trusted.
func TestTrustBrowser(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	w.enrol(t, "ada")
	w.enrol(t, "grace")
	login := func(h http.Header, name, password, code string, trust bool, from http.Header) Outcome {
		c := w.client("192.0.2.90")
		if from != nil {
			c.Wire = w.back(t, from)
		}
		return w.s.Password(ctx, h, Login{Name: name, Password: password, Code: code, Trust: trust, Client: c})
	}
	off := http.Header{}
	if out := login(off, "ada", adaPassword, w.code(t), true, nil); out.Session == nil || strings.Contains(strings.Join(cookieNames(t, off), " "), "_trust") {
		t.Fatalf("trust_browser with remember_second_factor off: %+v %v", out, cookieNames(t, off))
	}
	w.s.Remember = 30 * 24 * time.Hour
	w.clk.Advance(30 * time.Second) // a code is used once
	trusted := http.Header{}
	if out := login(trusted, "ada", adaPassword, w.code(t), true, nil); out.Session == nil || out.Session.Method != session.MethodPassword {
		t.Fatalf("the code step with trust_browser: %+v", out)
	}
	if list, err := w.s.TOTP.Trusts("ada"); err != nil || len(list) != 1 || !list[0].Expires.After(w.clk.Now().Add(29*24*time.Hour)) {
		t.Fatalf("ada's trusts: %+v %v", list, err)
	}
	out := login(http.Header{}, "ada", adaPassword, "", false, trusted)
	if out.Session == nil || out.Session.Factors != 2 || out.Session.Method != session.MethodTrusted {
		t.Fatalf("a password on the trusted browser: %+v", out)
	}
	if k := w.s.StepUpOf(out.Session); k != StepUpCode {
		t.Errorf("a trusted session's step-up: %v, want a code", k)
	}
	if out := login(http.Header{}, "ada", adaPassword, "", false, nil); !out.CodeNeeded {
		t.Errorf("a password on another browser: %+v", out)
	}
	if out := login(http.Header{}, "grace", gracePassword, "", false, trusted); !out.CodeNeeded {
		t.Errorf("grace on ada's trusted browser: %+v", out)
	}
	if err := w.s.TOTP.UntrustAll(ctx, "ada"); err != nil {
		t.Fatal(err)
	}
	if out := login(http.Header{}, "ada", adaPassword, "", false, trusted); !out.CodeNeeded {
		t.Errorf("a password on a browser no longer trusted: %+v", out)
	}
}
