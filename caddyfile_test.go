package miniapp

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddytest"
	_ "github.com/caddyserver/caddy/v2/modules/standard"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// TestAdaptExample compares `caddy adapt` of the example Caddyfile with
// the golden JSON; -update rewrites it.
func TestAdaptExample(t *testing.T) {
	src, err := os.ReadFile("Caddyfile")
	if err != nil {
		t.Fatal(err)
	}
	const golden = "testdata/Caddyfile.json"
	if *update {
		writeAdapted(t, golden, "", src)
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !caddytest.CompareAdapt(t, "Caddyfile", string(src), "caddyfile", strings.TrimSuffix(string(want), "\n")) {
		t.Errorf("adapted config differs from %s (go test -run TestAdaptExample -update)", golden)
	}
}

// goldenSeparator parts a .caddyfiletest file: the Caddyfile, then the
// JSON it adapts to.
const goldenSeparator = "\n----------\n"

// TestAdaptGolden adapts each testdata/caddyfile_adapt/*.caddyfiletest
// and compares it with the JSON in the same file; -update rewrites it.
func TestAdaptGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/caddyfile_adapt/*.caddyfiletest")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden Caddyfiles: %v", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			caddyfile, want, _ := strings.Cut(string(data), goldenSeparator)
			caddyfile += "\n"
			if *update {
				writeAdapted(t, file, caddyfile+goldenSeparator[1:], []byte(caddyfile))
				want = string(adapt(t, []byte(caddyfile)))
			}
			if !caddytest.CompareAdapt(t, file, caddyfile, "caddyfile", strings.TrimSuffix(want, "\n")) {
				t.Errorf("adapted config differs from the JSON in %s (go test -run TestAdaptGolden -update)", file)
			}
		})
	}
}

// adapt returns the indented JSON of a Caddyfile.
func adapt(t *testing.T, src []byte) []byte {
	t.Helper()
	got, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt(src, nil)
	if err != nil || len(warnings) > 0 {
		t.Fatalf("adapting: %v %v", err, warnings)
	}
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, got, "", "\t"); err != nil {
		t.Fatal(err)
	}
	pretty.WriteByte('\n')
	return pretty.Bytes()
}

// writeAdapted writes prefix and the adapted JSON of src to a golden file.
func writeAdapted(t *testing.T, file, prefix string, src []byte) {
	t.Helper()
	if err := os.WriteFile(file, append([]byte(prefix), adapt(t, src)...), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestDirectiveOrder checks that the directive sorts right after encode
// and before the handlers that use its decision, with no order option.
func TestDirectiveOrder(t *testing.T) {
	src := `localhost {
	file_server
	reverse_proxy /api/* 127.0.0.1:1
	respond /r "hi"
	templates
	route /x {
		respond "x"
	}
	handle /y {
		respond "y"
	}
	miniapp {
		user ada ` + adaHash + `
	}
	encode gzip
}`
	got, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(src), nil)
	if err != nil {
		t.Fatal(err)
	}
	order := []string{`"encode"`, `"miniapp"`, `"templates"`, `"subroute"`, `"static_response"`, `"reverse_proxy"`, `"file_server"`}
	rest := string(got)
	for _, handler := range order {
		i := strings.Index(rest, `"handler":`+handler)
		if i < 0 {
			t.Fatalf("handler %s missing or out of order in %s", handler, got)
		}
		rest = rest[i+1:]
	}
}

func TestUnmarshalCaddyfile(t *testing.T) {
	good := `miniapp {
		user ada ` + adaHash + `
		user grace ` + graceHash + `
		secret_key {env.MINIAPP_KEY}
		secret_key ` + testKey + ` {env.OLD_KEY}
		session_lifetime 2h
		cookie_name sid
		max_body_size 1MiB
		revocation_sync 3s
		idle_timeout 20m
		login_limit 3 30s
		protect /private/* /docs/*.pdf
		protect /report
		realm staff
		second_factor required
		totp_issuer "Example Corp"
		passkeys off
		passkey_rp_id example.com
		oidc {
			client app {
				redirect_uri http://127.0.0.1/cb
			}
		}
	}`
	var h Handler
	if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(good)); err != nil {
		t.Fatal(err)
	}
	if len(h.Accounts) != 2 || h.Accounts[1].Username != "grace" || strings.Join(h.SecretKeys, " ") != "{env.MINIAPP_KEY} "+testKey+" {env.OLD_KEY}" || h.Realm != "staff" ||
		time.Duration(h.SessionLifetime) != 2*time.Hour || h.CookieName != "sid" || h.MaxBodySize != 1<<20 ||
		time.Duration(h.RevocationSync) != 3*time.Second || time.Duration(h.IdleTimeout) != 20*time.Minute ||
		h.LoginLimit.Failures != 3 || time.Duration(h.LoginLimit.Window) != 30*time.Second ||
		strings.Join(h.Protect, " ") != "/private/* /docs/*.pdf /report" ||
		h.SecondFactor != factorRequired || h.TOTPIssuer != "Example Corp" || h.Passkeys == nil || *h.Passkeys || h.PasskeyRPID != "example.com" ||
		h.OIDC == nil || len(h.OIDC.Clients) != 1 || h.OIDC.Clients[0].ID != "app" {
		t.Errorf("parsed %+v", h)
	}

	bad := map[string]string{
		"argument on directive": "miniapp x",
		"unknown":               "miniapp {\n nope 1\n}",
		"user missing name":     "miniapp {\n user\n}",
		"user link short":       "miniapp {\n user ada {\n sign_in_with github\n }\n}",
		"sign_in_with no name":  "miniapp {\n sign_in_with {\n }\n}",
		"sign_in_with unknown":  "miniapp {\n sign_in_with github {\n tenant x\n }\n}",
		"user extra":            "miniapp {\n user ada h x\n}",
		"key missing":           "miniapp {\n secret_key\n}",
		"realm missing":         "miniapp {\n realm\n}",
		"realm extra":           "miniapp {\n realm a b\n}",
		"realm duplicate":       "miniapp {\n realm a\n realm b\n}",
		"store missing":         "miniapp {\n store\n}",
		"store unknown":         "miniapp {\n store memcached\n}",
		"user block unknown":    "miniapp {\n user ada h {\n  phone 1\n }\n}",
		"user groups missing":   "miniapp {\n user ada h {\n  groups\n }\n}",
		"user email extra":      "miniapp {\n user ada h {\n  email a@b c@d\n }\n}",
		"user name duplicate":   "miniapp {\n user ada h {\n  name A\n  name B\n }\n}",
		"cookie_domain missing": "miniapp {\n cookie_domain\n}",
		"login_url extra":       "miniapp {\n login_url a b\n}",
		"store storage options": "miniapp {\n store storage {\n  path x\n }\n}",
		"redis unknown":         "miniapp {\n store redis {\n  host x\n }\n}",
		"redis bad db":          "miniapp {\n store redis {\n  db -1\n }\n}",
		"redis tls argument":    "miniapp {\n store redis {\n  tls yes\n }\n}",
		"redis tls unknown":     "miniapp {\n store redis {\n  tls {\n   verify no\n  }\n }\n}",
		"redis tls ca twice":    "miniapp {\n store redis {\n  tls {\n   ca a\n   ca b\n  }\n }\n}",
		"redis tls key missing": "miniapp {\n store redis {\n  tls {\n   key\n  }\n }\n}",
		"redis twice password":  "miniapp {\n store redis {\n  password a\n  password b\n }\n}",
		"lifetime bad":          "miniapp {\n session_lifetime soon\n}",
		"lifetime negative":     "miniapp {\n session_lifetime -1h\n}",
		"lifetime duplicate":    "miniapp {\n session_lifetime 1h\n session_lifetime 2h\n}",
		"lifetime extra":        "miniapp {\n session_lifetime 1h 2h\n}",
		"size bad":              "miniapp {\n max_body_size lots\n}",
		"size zero":             "miniapp {\n max_body_size 0\n}",
		"cookie extra":          "miniapp {\n cookie_name a b\n}",
		"sync missing":          "miniapp {\n revocation_sync\n}",
		"idle zero":             "miniapp {\n idle_timeout 0s\n}",
		"limit one arg":         "miniapp {\n login_limit 5\n}",
		"limit bad count":       "miniapp {\n login_limit many 1m\n}",
		"limit zero":            "miniapp {\n login_limit 0 1m\n}",
		"limit bad window":      "miniapp {\n login_limit 5 soon\n}",
		"limit extra":           "miniapp {\n login_limit 5 1m x\n}",
		"protect empty":         "miniapp {\n protect\n}",
		"second_factor missing": "miniapp {\n second_factor\n}",
		"second_factor twice":   "miniapp {\n second_factor required\n second_factor optional\n}",
		"totp_issuer extra":     "miniapp {\n totp_issuer a b\n}",
		"passkeys maybe":        "miniapp {\n passkeys maybe\n}",
		"passkey_rp_id missing": "miniapp {\n passkey_rp_id\n}",
		"oidc twice":            "miniapp {\n oidc {\n }\n oidc {\n }\n}",
		"oidc unknown":          "miniapp {\n oidc {\n clients x\n }\n}",
	}
	for name, input := range bad {
		var h Handler
		err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input))
		if err == nil {
			t.Errorf("%s: accepted", name)
		} else if !strings.Contains(err.Error(), "Testfile:") {
			t.Errorf("%s: error %q does not name the file and line", name, err)
		}
	}
}

// TestUserBlock reads a user's groups, email and name from its block,
// beside the one-line form, with cookie_domain and login_url.
func TestUserBlock(t *testing.T) {
	var h Handler
	err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(`miniapp {
		cookie_domain example.com
		login_url https://auth.example.com/login
		user ada ` + adaHash + ` {
			groups admins staff
			email ada@example.com
			name "Ada Lovelace"
		}
		user bob ` + adaHash + `
	}`))
	if err != nil {
		t.Fatal(err)
	}
	ada, bob := h.Accounts[0], h.Accounts[1]
	if len(h.Accounts) != 2 || ada.Username != "ada" || strings.Join(ada.Groups, " ") != "admins staff" || ada.Email != "ada@example.com" ||
		ada.Name != "Ada Lovelace" || bob.Username != "bob" || bob.Groups != nil || h.CookieDomain != "example.com" || h.LoginURL != "https://auth.example.com/login" {
		t.Errorf("parsed %+v", h)
	}
}
