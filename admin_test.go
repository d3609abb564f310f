package miniapp

import (
	"encoding/json"
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

// TestAdminFindsUsersOfEveryHandler: two handlers of one realm with
// different users (two site blocks, or the configs before and after a
// reload) each have their users found, and their sessions listed.
func TestAdminFindsUsersOfEveryHandler(t *testing.T) {
	storage := t.TempDir()
	one := newApp(t, storage, func(h *Handler) { h.Realm = "admin-two"; h.Accounts = testAccounts()[:1] })
	two := newApp(t, storage, func(h *Handler) { h.Realm = "admin-two"; h.Accounts = testAccounts()[1:] })
	one.loginWith(one.h.Accounts[0].Username, firefoxUA)
	two.loginWith(two.h.Accounts[0].Username, iphoneUA)
	for _, a := range []*testApp{one, two} {
		name := a.h.Accounts[0].Username
		w := httptest.NewRecorder()
		err := (&AdminAPI{}).sessions(w, httptest.NewRequest("GET", "/miniapp/sessions?realm=admin-two&user="+name, nil))
		var listed []sessionJSON
		if err != nil || json.Unmarshal(w.Body.Bytes(), &listed) != nil || len(listed) != 1 {
			t.Errorf("sessions of %s: %v %s", name, err, w.Body)
		}
	}
}
