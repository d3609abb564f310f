package miniapp

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
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
	got, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt(src, map[string]any{"filename": "Caddyfile"})
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) > 0 {
		t.Errorf("warnings: %v", warnings)
	}
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, got, "", "\t"); err != nil {
		t.Fatal(err)
	}
	pretty.WriteByte('\n')
	const golden = "testdata/Caddyfile.json"
	if *update {
		if err := os.WriteFile(golden, pretty.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(pretty.Bytes(), want) {
		t.Errorf("adapted config differs from %s (go test -run TestAdaptExample -update):\n%s", golden, pretty.String())
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
