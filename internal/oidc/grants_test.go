package oidc

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/caddy-miniapp/miniapp/store"
)

// TestRefreshRotation: each use rotates the refresh token; presenting
// a used one is invalid_grant and ends the whole chain.
func TestRefreshRotation(t *testing.T) {
	f := newFixture(t)
	tok := f.exchange(t, "grafana", grafanaURI, f.code(t, "grafana", grafanaURI, "openid offline_access", f.signed(f.ada, 1)))
	if tok.RefreshToken == "" {
		t.Fatalf("no refresh token: %+v", tok)
	}
	refresh := func(rt string) tokenResponse {
		return f.token(t, "grafana", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
	}
	second := refresh(tok.RefreshToken)
	if second.status != http.StatusOK || second.RefreshToken == "" || second.RefreshToken == tok.RefreshToken {
		t.Fatalf("first refresh: %+v", second)
	}
	if grants, err := f.p.Grants("ada"); err != nil || len(grants) != 1 || grants[0].Client != "grafana" || grants[0].Rotation != 1 {
		t.Errorf("grants after a refresh: %+v %v", grants, err)
	}
	if cli := f.token(t, "cli", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {second.RefreshToken}}); cli.status == http.StatusOK {
		t.Errorf("another client used grafana's refresh token: %+v", cli)
	}
	if reused := refresh(tok.RefreshToken); reused.status != http.StatusBadRequest || reused.Error != "invalid_grant" {
		t.Fatalf("a used refresh token: %+v", reused)
	}
	if after := refresh(second.RefreshToken); after.status != http.StatusBadRequest || after.Error != "invalid_grant" {
		t.Errorf("the chain after a reuse: %+v", after)
	}
	if status, _, _ := f.userinfo(second.AccessToken); status != http.StatusUnauthorized {
		t.Errorf("an access token of the chain after a reuse: %d", status)
	}
	if grants, _ := f.p.Grants("ada"); len(grants) != 0 {
		t.Errorf("grants after a reuse: %+v", grants)
	}
}

// TestSignOutEverywhere ends every token of the user; ending one
// browser session ends its tokens but not an offline grant's.
func TestSignOutEverywhere(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	s := f.signed(f.ada, 1)
	online := f.exchange(t, "grafana", grafanaURI, f.code(t, "grafana", grafanaURI, "openid", s))
	offline := f.exchange(t, "grafana", grafanaURI, f.code(t, "grafana", grafanaURI, "openid offline_access", s))
	f.p.shared.Revoke(ctx, s.Session, s.Expires)
	if status, _, _ := f.userinfo(online.AccessToken); status != http.StatusUnauthorized {
		t.Errorf("a session's token after its logout: %d", status)
	}
	if status, _, _ := f.userinfo(offline.AccessToken); status != http.StatusOK {
		t.Errorf("an offline token after the session's logout: %d", status)
	}
	if grants, _ := f.p.Grants("ada"); len(grants) != 1 {
		t.Errorf("grants before sign out everywhere: %+v", grants)
	}
	f.p.shared.SignOutEverywhere(ctx, store.AccountID(f.ada.ID))
	if status, _, _ := f.userinfo(offline.AccessToken); status != http.StatusUnauthorized {
		t.Errorf("an offline token after sign out everywhere: %d", status)
	}
	if grants, _ := f.p.Grants("ada"); len(grants) != 0 {
		t.Errorf("grants listed after sign out everywhere: %+v", grants)
	}
	if tok := f.token(t, "grafana", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {offline.RefreshToken}}); tok.Error != "invalid_grant" {
		t.Errorf("a refresh after sign out everywhere: %+v", tok)
	}
}

// TestRevoke: the revocation endpoint ends a grant; a forged ID does
// nothing.
func TestRevoke(t *testing.T) {
	f := newFixture(t)
	tok := f.exchange(t, "grafana", grafanaURI, f.code(t, "grafana", grafanaURI, "openid offline_access", f.signed(f.ada, 1)))
	h := http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte("grafana:"+secret))}}
	if w, _ := f.serve(http.MethodPost, Prefix+"revoke", url.Values{"token": {"forged"}}, h); w.Code != http.StatusOK {
		t.Errorf("revoking a forged token: %d %s", w.Code, w.Body)
	}
	if status, _, _ := f.userinfo(tok.AccessToken); status != http.StatusOK {
		t.Fatalf("a forged revocation ended a token: %d", status)
	}
	if w, _ := f.serve(http.MethodPost, Prefix+"revoke", url.Values{"token": {tok.RefreshToken}}, h); w.Code != http.StatusOK {
		t.Errorf("revoke: %d %s", w.Code, w.Body)
	}
	if status, _, _ := f.userinfo(tok.AccessToken); status != http.StatusUnauthorized {
		t.Errorf("an access token of a revoked grant: %d", status)
	}
	// an access token without offline_access whose grant ends (code and
	// access token lifetimes) just past an hour's end, while the access
	// token lifetime alone ends before it: the revocation list keeps IDs
	// by the hour they end in
	at := time.Now().Truncate(time.Hour).Add(time.Hour - 10*time.Minute - 30*time.Second)
	if time.Until(at) < 0 {
		at = at.Add(time.Hour)
	}
	f.clock.Advance(time.Until(at))
	online := f.exchange(t, "grafana", grafanaURI, f.code(t, "grafana", grafanaURI, "openid", f.signed(f.ada, 1)))
	if w, _ := f.serve(http.MethodPost, Prefix+"revoke", url.Values{"token": {online.AccessToken}, "token_type_hint": {"access_token"}}, h); w.Code != http.StatusOK {
		t.Errorf("revoke an access token: %d %s", w.Code, w.Body)
	}
	if status, _, _ := f.userinfo(online.AccessToken); status != http.StatusUnauthorized {
		t.Errorf("a revoked access token: %d", status)
	}
}
