package miniapp

import (
	"net/http/httptest"
	"testing"
)

// TestAdminKnowsLiveHandlers: the admin API finds a provisioned handler
// by its realm, the default realm when none is asked for, and forgets
// it once it is cleaned up (a config unloaded).
func TestAdminKnowsLiveHandlers(t *testing.T) {
	a := newApp(t, "", func(h *Handler) { h.Realm = "admin-test" })
	_, handlers, err := realmHandlers(httptest.NewRequest("GET", "/miniapp/sessions?user=ada&realm=admin-test", nil))
	if err != nil || len(handlers) != 1 || handlers[0] != a.h {
		t.Fatalf("realm of a live handler: %v %v", handlers, err)
	}
	if _, _, err := accountsOf(httptest.NewRequest("GET", "/miniapp/sessions?user=nobody&realm=admin-test", nil)); err == nil {
		t.Errorf("an unknown user found")
	}
	if err := a.h.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := realmHandlers(httptest.NewRequest("GET", "/miniapp/sessions?user=ada&realm=admin-test", nil)); err == nil {
		t.Errorf("a handler cleaned up is still found")
	}
}
