package sso

import (
	"net/url"
	"slices"
	"strings"

	"github.com/caddy-miniapp/miniapp/internal/account"
)

// Rules are the conditions of one site's check, read from the endpoint's
// own query alone: every group= parameter names groups of which the user
// must be in at least one, every user= parameter users of which the user
// must be one, and factor=2 asks for a session that began with a second
// factor. Every rule applies (AND), so a parameter a client adds can only
// tighten the check; parameters that are not rules are ignored.
type Rules struct {
	groups, users [][]string
	// Factors is 2 when the site asks for a session of two factors.
	Factors uint8
	// Ignored are the names of the parameters that are no rules, for the
	// log.
	Ignored []string
}

// RuleError is a query that makes no rules; its text is the one-line
// reason, which never repeats the query.
type RuleError string

func (e RuleError) Error() string { return string(e) }

// ParseRules reads group=a,b and user=ada,bob, each repeatable, and
// factor=2; names and values are percent-decoded first.
func ParseRules(query string) (Rules, error) {
	var out Rules
	for query != "" {
		var pair string
		pair, query, _ = strings.Cut(query, "&")
		if pair == "" {
			continue
		}
		rawKey, rawValue, _ := strings.Cut(pair, "=")
		k, kerr := url.QueryUnescape(rawKey)
		v, verr := url.QueryUnescape(rawValue)
		if kerr != nil || verr != nil {
			return out, RuleError("invalid percent-encoding in parameters")
		}
		switch k {
		case "factor":
			if v != "2" {
				return out, RuleError("factor must be 2")
			}
			out.Factors = 2
		case "group", "user":
			names := strings.Split(v, ",")
			for _, n := range names {
				if n == "" || account.CheckName(n) != nil {
					return out, RuleError("a rule names an empty or invalid group or user")
				}
			}
			if k == "group" {
				out.groups = append(out.groups, names)
			} else {
				out.users = append(out.users, names)
			}
		default:
			out.Ignored = append(out.Ignored, k)
		}
	}
	return out, nil
}

// Allow reports whether the account meets every group and user rule.
func (rs Rules) Allow(a *account.Account) bool {
	for _, oneOf := range rs.groups {
		if !slices.ContainsFunc(oneOf, a.HasGroup) {
			return false
		}
	}
	for _, oneOf := range rs.users {
		if !slices.Contains(oneOf, a.Name) {
			return false
		}
	}
	return true
}
