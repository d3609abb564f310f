package admin

import (
	"net/http"
	"testing"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/testhash"
)

// TestNoProvider: a realm without `oidc` answers the provider's admin
// paths with 404, and the key rotation takes POST alone.
func TestNoProvider(t *testing.T) {
	realm := newRealm()
	register(t, realm, t.TempDir(), time.Hour, "ada", testhash.Bcrypt("lovelace-1815"))
	for _, tc := range []struct {
		method, target string
		status         int
	}{
		{http.MethodGet, "/miniapp/oidc/grants?user=ada&realm=" + realm, http.StatusNotFound},
		{http.MethodDelete, "/miniapp/oidc/grants?user=ada&realm=" + realm, http.StatusNotFound},
		{http.MethodPost, "/miniapp/oidc/keys?realm=" + realm, http.StatusNotFound},
		{http.MethodGet, "/miniapp/oidc/keys?realm=" + realm, http.StatusMethodNotAllowed},
	} {
		if _, err := do(t, tc.method, tc.target); apiStatus(err) != tc.status {
			t.Errorf("%s %s: %v, want %d", tc.method, tc.target, err, tc.status)
		}
	}
}
