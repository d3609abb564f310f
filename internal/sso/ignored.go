package sso

import (
	"sync"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/account"
	"go.uber.org/zap"
)

// Ignored remembers which parameter names that are no rules were
// logged, so that each is logged once an hour (a typo such as groups=
// shows in the log, and a client's own parameters cannot flood it): at
// most MaxIgnored names an hour, and a count of the others.
type Ignored struct {
	mu      sync.Mutex
	seen    map[string]bool
	since   time.Time
	dropped int
}

// MaxIgnored bounds how many names are logged an hour: the names of
// a query that reaches the endpoint are the client's to choose.
const MaxIgnored = 32

// IgnoredWindow is how long a logged name stays quiet.
const IgnoredWindow = time.Hour

// Warn logs the name at warn unless it was logged within the window or
// MaxIgnored names were; a new window first says how many names it
// left out.
func (n *Ignored) Warn(logger *zap.Logger, now time.Time, name string) {
	n.mu.Lock()
	dropped := 0
	if now.Sub(n.since) >= IgnoredWindow {
		dropped, n.dropped, n.seen, n.since = n.dropped, 0, make(map[string]bool), now
	}
	first := !n.seen[name] && len(n.seen) < MaxIgnored
	if first {
		n.seen[name] = true
	} else if !n.seen[name] {
		n.dropped++
	}
	n.mu.Unlock()
	if dropped > 0 {
		logger.Warn("more parameters of /miniapp/auth that are no rules were ignored in the last hour than are named in the log", zap.Int("not_named", dropped))
	}
	if first {
		if len(name) > 64 || account.CheckText(name) != nil {
			name = "(a long or unprintable name)"
		}
		logger.Warn("a parameter of /miniapp/auth is no rule and was ignored (rules are group, user and factor)", zap.String("parameter", name))
	}
}
