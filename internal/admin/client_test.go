package admin

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
)

// TestPrintable: what the command prints of an admin API answer cannot
// drive the terminal: control characters come out escaped.
func TestPrintable(t *testing.T) {
	for in, want := range map[string]string{
		"Firefox on Linux":    "Firefox on Linux",
		"203.0.113.7":         "203.0.113.7",
		"é on iPhone":         "é on iPhone",
		"\x1b[2Jgone":         `"\x1b[2Jgone"`,
		"a\rb":                `"a\rb"`,
		"tab\there":           `"tab\there"`,
		"line\u2028separator": `"line\u2028separator"`,
	} {
		if got := printable(in); got != want {
			t.Errorf("printable(%q) = %s, want %s", in, got, want)
		}
	}
}

// TestAdminAddress finds the admin API's address as caddy reload does:
// --address, else --config, else ./Caddyfile, else Caddy's default.
func TestAdminAddress(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	if got, err := adminAddress("", "", ""); err != nil || got != caddy.DefaultAdminListen {
		t.Errorf("no Caddyfile: %q %v", got, err)
	}
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("Caddyfile", "{\n\tadmin localhost:2345\n}\n:8080 {\n\trespond ok\n}\n")
	write("other.json", `{"admin": {"listen": "localhost:3456"}}`)
	for _, c := range []struct{ address, config, adapter, want string }{
		{"", "", "", "localhost:2345"},
		{"localhost:9999", "", "", "localhost:9999"},
		{"", "other.json", "", "localhost:3456"},
		{"", "Caddyfile", "caddyfile", "localhost:2345"},
	} {
		if got, err := adminAddress(c.address, c.config, c.adapter); err != nil || got != c.want {
			t.Errorf("%+v: %q %v", c, got, err)
		}
	}
	if _, err := adminAddress("", "missing.json", ""); err == nil {
		t.Error("a missing --config")
	}
	write("Caddyfile", "{\n\tadmin\n")
	if _, err := adminAddress("", "", ""); err == nil || !strings.Contains(err.Error(), "Caddyfile") {
		t.Errorf("a broken Caddyfile: %v", err)
	}
}
