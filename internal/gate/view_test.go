package gate

import (
	"testing"

	"github.com/caddy-miniapp/miniapp/store"
)

// TestDeviceName names the browser and system from known names only.
func TestDeviceName(t *testing.T) {
	for header, want := range map[string]string{
		"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0":                                                                  "Firefox on Linux",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1": "Safari on iPhone",
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36":                         "Chrome on Windows",
		"curl/8.5.0":                       store.UnknownDevice,
		"":                                 store.UnknownDevice,
		"<img src=x onerror=alert(1)>/1.0": store.UnknownDevice,
	} {
		if got := DeviceName(header); got != want {
			t.Errorf("DeviceName(%q) = %q, want %q", header, got, want)
		}
	}
}
