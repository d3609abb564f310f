package oidc

import (
	"testing"

	"github.com/caddy-miniapp/miniapp/internal/session"
)

// TestTokenSealed: a token opens only under the name it was sealed
// under, and a refresh token only when offline.
func TestTokenSealed(t *testing.T) {
	keys, err := session.NewKeyring([][]byte{session.Random(32)}, "r")
	if err != nil {
		t.Fatal(err)
	}
	tok := &token{Grant: Grant{User: "ada"}, ClientID: "app", Scopes: []string{"openid"}, Offline: true, Expires: 1}
	refresh := sealToken(keys, refreshName, tok)
	if got, ok := openRefresh(keys, refresh); !ok || got.Grant.User != "ada" || got.ClientID != "app" {
		t.Fatalf("openRefresh: %+v %v", got, ok)
	}
	if _, ok := openToken(keys, accessName, refresh); ok {
		t.Error("a refresh token opened as an access token")
	}
	if _, ok := openRefresh(keys, sealToken(keys, accessName, tok)); ok {
		t.Error("an access token opened as a refresh token")
	}
	tok.Offline = false
	if _, ok := openRefresh(keys, sealToken(keys, refreshName, tok)); ok {
		t.Error("a token that is not offline opened as a refresh token")
	}
	if _, ok := openToken(keys, refreshName, refresh[:len(refresh)-2]+"AA"); ok {
		t.Error("a forged token opened")
	}
}
