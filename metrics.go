package miniapp

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metricSet is the module's Prometheus counters. They are created once
// per process and registered into each config's registry, so the counts
// go on across reloads.
type metricSet struct {
	logins       *prometheus.CounterVec
	logouts      prometheus.Counter
	rejections   *prometheus.CounterVec
	secondFactor *prometheus.CounterVec
}

var metrics = metricSet{
	logins: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "caddy_miniapp_logins_total",
		Help: "Login attempts by result: success, failure (wrong or unknown credentials) or throttled.",
	}, []string{"result"}),
	logouts: prometheus.NewCounter(prometheus.CounterOpts{
		Name: "caddy_miniapp_logouts_total",
		Help: "Sessions ended by logout.",
	}),
	rejections: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "caddy_miniapp_session_rejections_total",
		Help: "Session cookies refused, by reason: malformed, expired or revoked.",
	}, []string{"reason"}),
	secondFactor: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "caddy_miniapp_second_factor_total",
		Help: "Second factor checks by result and reason: success (totp, recovery) or failure (wrong_code, replayed, throttled, store, unreadable, no_factor).",
	}, []string{"result", "reason"}),
}

// register adds the counters to a config's registry; a second handler
// in the same config finds them there already.
func (m *metricSet) register(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.logins, m.logouts, m.rejections, m.secondFactor} {
		if err := reg.Register(c); err != nil {
			if _, ok := errors.AsType[prometheus.AlreadyRegisteredError](err); !ok {
				return err
			}
		}
	}
	return nil
}
