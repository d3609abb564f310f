package idp

import (
	"cmp"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// Identity is who a provider vouches for.
type Identity struct {
	// Provider names the provider; Subject is the identity's stable ID
	// there: OpenID Connect's sub, or GitHub's numeric user ID. Never a
	// login name or an e-mail address, which can change hands.
	Provider, Subject string
	// Username is the provider's preferred_username (GitHub's login),
	// Name the display name: for display only.
	Username, Name string
	// Email is the user's e-mail address there, EmailVerified whether
	// the provider says it checked it (GitHub: the primary address,
	// verified).
	Email         string
	EmailVerified bool
	// Groups are the groups_claim's groups, those a header can carry.
	Groups []string
	// MFA: the provider says it checked a second factor (amr holds mfa,
	// otp or hwk).
	MFA bool
}

// Bounds of what an identity carries.
const (
	maxSubject   = 255
	maxText      = 256
	maxGroups    = 64
	maxGroupLen  = 64
	maxBodyBytes = 1 << 20
)

// Exchange finishes a flow: the code exchanged with its verifier, then
// the ID token verified (issuer, audience, expiry, signature through
// the provider's keys, and the flow's nonce) or, for GitHub, the user
// read from its API with the token.
func (s *Service) Exchange(ctx context.Context, p *Provider, callback string, f *Flow, code string) (Identity, error) {
	conf, d, err := s.oauth(ctx, p, callback)
	if err != nil {
		return Identity{}, err
	}
	ctx = s.context(ctx)
	tok, err := conf.Exchange(ctx, code, oauth2.VerifierOption(f.Verifier))
	if answered, ok := errors.AsType[*oauth2.RetrieveError](err); ok && answered.Response != nil && answered.Response.StatusCode < 500 {
		// the provider refused the code the client brought
		return Identity{}, &Error{Status: http.StatusBadRequest, Reason: p.Label + " did not accept the sign-in's code; start again", Cause: err, Refused: true}
	}
	if err != nil {
		return Identity{}, unavailable(p, err)
	}
	if p.IsGitHub() {
		return s.githubUser(ctx, p, tok)
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := d.Verifier(&gooidc.Config{ClientID: p.ClientID}).Verify(ctx, raw)
	if err == nil && subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(f.Nonce)) != 1 {
		err = errors.New("the ID token's nonce is not the sign-in's")
	}
	if err != nil {
		return Identity{}, &Error{Status: http.StatusBadRequest, Reason: p.Label + " sent an ID token that does not check out; start again", Cause: err, Refused: true}
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return Identity{}, unavailable(p, err)
	}
	id := Identity{Provider: p.Name, Subject: idt.Subject, Username: text(claims["preferred_username"]), Name: text(claims["name"]),
		Email: text(claims["email"]), EmailVerified: claims["email_verified"] == true || claims["email_verified"] == "true"}
	if p.isGoogle() && id.EmailVerified {
		id.EmailVerified = googleOwns(id.Email, text(claims["hd"]))
	}
	if amr, ok := claims["amr"].([]any); ok {
		id.MFA = slices.ContainsFunc(amr, func(m any) bool { return m == "mfa" || m == "otp" || m == "hwk" })
	}
	if p.GroupsClaim != "" {
		id.Groups = groups(claims[p.GroupsClaim])
	}
	return id.checked(p)
}

// googleOwns reports whether Google's word on an address holds: a
// Gmail address, or one of the Workspace domain (hd) the account
// belongs to. Google verifies other addresses of personal accounts
// once, at sign-up, so such an address may have left its owner since
// (a former employee's work address): it neither links a user nor
// meets email_domains.
func googleOwns(email, hd string) bool {
	_, domain, _ := strings.Cut(strings.ToLower(email), "@")
	if hd == "" {
		return domain == "gmail.com" || domain == "googlemail.com"
	}
	return domain == strings.ToLower(hd)
}

// checked refuses an identity whose ID cannot name a user and drops an
// e-mail address that is not one.
func (id Identity) checked(p *Provider) (Identity, error) {
	if id.Subject == "" || len(id.Subject) > maxSubject || !plain(id.Subject) {
		return Identity{}, fail(http.StatusBadGateway, p.Label+" sent no usable user ID")
	}
	if local, domain, ok := strings.Cut(id.Email, "@"); !ok || local == "" || domain == "" || strings.ContainsAny(id.Email, ", ") {
		id.Email, id.EmailVerified = "", false
	}
	return id, nil
}

// text is a claim's string that pages, headers and logs can carry, or
// "".
func text(v any) string {
	s, _ := v.(string)
	if len(s) > maxText || !plain(s) {
		return ""
	}
	return s
}

// plain reports whether s is UTF-8 without control characters.
func plain(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsFunc(s, func(r rune) bool {
		return r < ' ' || r == 0x7f || r >= 0x80 && r < 0xa0 || r == '\u2028' || r == '\u2029'
	})
}

// groups are a groups claim's groups (an array of strings, or one
// string) that a comma-joined header can carry: none with a comma,
// white space or a control character, each at most 64 bytes, at most
// 64 of them.
func groups(v any) []string {
	var all []any
	switch g := v.(type) {
	case []any:
		all = g
	case string:
		all = []any{g}
	}
	var out []string
	for _, g := range all {
		s, ok := g.(string)
		if ok && s != "" && len(s) <= maxGroupLen && plain(s) && !strings.ContainsFunc(s, func(r rune) bool { return r == ',' || unicode.IsSpace(r) }) &&
			!slices.Contains(out, s) && len(out) < maxGroups {
			out = append(out, s)
		}
	}
	return out
}

// githubUser reads the signed-in GitHub user: its numeric ID, login and
// name, and its primary e-mail address with whether GitHub verified it.
func (s *Service) githubUser(ctx context.Context, p *Provider, tok *oauth2.Token) (Identity, error) {
	var user struct {
		ID    int64  `json:"id"`
		Login string `json:"login"`
		Name  string `json:"name"`
	}
	if err := s.githubGet(ctx, p, tok, "/user", &user); err != nil || user.ID <= 0 {
		return Identity{}, unavailable(p, cmp.Or(err, errors.New("GitHub's /user has no id")))
	}
	var emails []githubEmail
	if err := s.githubGet(ctx, p, tok, "/user/emails", &emails); err != nil {
		return Identity{}, unavailable(p, err)
	}
	id := Identity{Provider: p.Name, Subject: strconv.FormatInt(user.ID, 10), Username: text(user.Login), Name: text(user.Name)}
	if i := slices.IndexFunc(emails, func(e githubEmail) bool { return e.Primary }); i >= 0 {
		id.Email, id.EmailVerified = text(emails[i].Email), emails[i].Verified
	}
	return id.checked(p)
}

// githubEmail is an address of GitHub's /user/emails.
type githubEmail struct {
	Email    string `json:"email"`
	Primary  bool   `json:"primary"`
	Verified bool   `json:"verified"`
}

// githubGet reads one JSON answer of GitHub's API with the token.
func (s *Service) githubGet(ctx context.Context, p *Provider, tok *oauth2.Token, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(p.APIURL, "/")+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/vnd.github+json")
	req.Header.Set("X-GitHub-Api-Version", "2022-11-28")
	tok.SetAuthHeader(req)
	resp, err := s.client.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GitHub's %s answered %s", path, resp.Status)
	}
	return json.NewDecoder(io.LimitReader(resp.Body, maxBodyBytes)).Decode(v)
}
