package miniapp

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metricSet is the module's Prometheus counters, each labelled with the
// handler's realm. They are created once per process and registered into
// each config's registry, so the counts go on across reloads.
type metricSet struct {
	logins       *prometheus.CounterVec
	logouts      *prometheus.CounterVec
	rejections   *prometheus.CounterVec
	secondFactor *prometheus.CounterVec
	oidcIssued   *prometheus.CounterVec
	oidcRefused  *prometheus.CounterVec
}

var metrics = metricSet{
	logins: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "caddy_miniapp_logins_total",
		Help: "Login attempts by realm and result: success, failure (wrong or unknown credentials) or throttled.",
	}, []string{"realm", "result"}),
	logouts: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "caddy_miniapp_logouts_total",
		Help: "Sessions ended by logout, by realm.",
	}, []string{"realm"}),
	rejections: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "caddy_miniapp_session_rejections_total",
		Help: "Session cookies refused, by realm and reason: malformed, expired or revoked.",
	}, []string{"realm", "reason"}),
	secondFactor: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "caddy_miniapp_second_factor_total",
		Help: "Second factor checks by realm, result and reason: success (totp, recovery, passkey) or failure (wrong_code, replayed, throttled, store, unreadable, no_factor).",
	}, []string{"realm", "result", "reason"}),
	oidcIssued: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "caddy_miniapp_oidc_issued_total",
		Help: "What the OpenID Connect provider issued, by realm, client and kind: code, access_token, refresh_token or logout_token (a back-channel logout delivered).",
	}, []string{"realm", "client", "kind"}),
	oidcRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "caddy_miniapp_oidc_refused_total",
		Help: "What the OpenID Connect provider refused, by realm, client (unknown when none opened) and reason: code_invalid, code_reused, refresh_token_invalid, refresh_token_ended, refresh_token_reused, refresh_token_revoked, access_token_ended, groups, second_factor, logout_token_undelivered.",
	}, []string{"realm", "client", "reason"}),
}

// metricLabels are the label values every series starts with, at 0, for
// each realm: dashboards and alerts work before the first event.
var metricLabels = map[*prometheus.CounterVec][][]string{
	metrics.logins:     {{"success"}, {"failure"}, {"throttled"}},
	metrics.logouts:    {{}},
	metrics.rejections: {{"malformed"}, {"expired"}, {"revoked"}},
	metrics.secondFactor: {{"success", "totp"}, {"success", "recovery"}, {"success", "passkey"},
		{"failure", "wrong_code"}, {"failure", "replayed"}, {"failure", "throttled"}, {"failure", "store"},
		{"failure", "unreadable"}, {"failure", "no_factor"}},
}

// register adds the counters to a config's registry, with every series
// of the realm at 0; a second handler in the same config finds them
// there already.
func (m *metricSet) register(reg prometheus.Registerer, realm string) error {
	for vec, series := range metricLabels {
		for _, labels := range series {
			vec.WithLabelValues(append([]string{realm}, labels...)...)
		}
	}
	for _, c := range []prometheus.Collector{m.logins, m.logouts, m.rejections, m.secondFactor, m.oidcIssued, m.oidcRefused} {
		if err := reg.Register(c); err != nil {
			if _, ok := errors.AsType[prometheus.AlreadyRegisteredError](err); !ok {
				return err
			}
		}
	}
	return nil
}

// count adds one to the handler's realm's series of vec with the labels.
func (h *Handler) count(vec *prometheus.CounterVec, labels ...string) {
	vec.WithLabelValues(append([]string{h.Realm}, labels...)...).Inc()
}

// realmCounter counts a realm's sign-in and sign-out events.
type realmCounter string

// Login counts a login by its result.
func (c realmCounter) Login(result string) { metrics.logins.WithLabelValues(string(c), result).Inc() }

// Logout counts a session ended by its user or the operator.
func (c realmCounter) Logout() { metrics.logouts.WithLabelValues(string(c)).Inc() }

// SecondFactor counts a second factor's check by its result and reason.
func (c realmCounter) SecondFactor(result, reason string) {
	metrics.secondFactor.WithLabelValues(string(c), result, reason).Inc()
}

// openIDCounter counts a realm's OpenID Connect provider's events.
type openIDCounter string

// Issued counts what the provider issued a client.
func (c openIDCounter) Issued(client, kind string) {
	metrics.oidcIssued.WithLabelValues(string(c), client, kind).Inc()
}

// Refused counts what the provider refused a client, by reason.
func (c openIDCounter) Refused(client, reason string) {
	metrics.oidcRefused.WithLabelValues(string(c), client, reason).Inc()
}
