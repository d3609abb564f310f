package oidc

import (
	"testing"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/session"
)

// TestRequestSealed: an authorization request's ID opens only as what
// was sealed, only until it expires and never once granted; a code opens
// only as a granted request, until its grant expires.
func TestRequestSealed(t *testing.T) {
	keys, err := session.NewKeyring([][]byte{session.Random(32)}, "r")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	r := &request{ClientID: "app", RedirectURI: "https://app.example.test/cb", Scopes: []string{"openid"}, Created: now.Unix()}
	id := sealRequest(keys, r)
	got, err := openRequest(keys, id, now)
	if err != nil || got.ClientID != "app" || got.GetID() != id {
		t.Fatalf("openRequest: %+v %v", got, err)
	}
	if _, err := openRequest(keys, id, now.Add(requestLifetime+time.Second)); err == nil {
		t.Error("an expired request opened")
	}
	if _, err := openRequest(keys, id[:len(id)-2]+"AA", now); err == nil {
		t.Error("a forged request opened")
	}
	other, _ := session.NewKeyring([][]byte{session.Random(32)}, "r")
	if _, err := openRequest(other, id, now); err == nil {
		t.Error("another realm's key opened the request")
	}
	done := got.granted(&Grant{User: "ada", Expires: now.Add(time.Minute).Unix()})
	if _, err := openRequest(keys, sealRequest(keys, done), now); err == nil {
		t.Error("a granted request opened as an authorization request")
	}
	code, err := openCode(done.GetID(), now)
	if err != nil || code.Grant == nil || code.Grant.User != "ada" {
		t.Fatalf("openCode: %+v %v", code, err)
	}
	for name, plain := range map[string]string{"without its prefix": done.GetID()[len(codePrefix):], "not granted": codePrefix + `{"c":"app"}`} {
		if _, err := openCode(plain, now); err == nil {
			t.Errorf("a code %s opened", name)
		}
	}
	if _, err := openCode(done.GetID(), now.Add(time.Minute)); err == nil {
		t.Error("a code opened once its grant expired")
	}
}
