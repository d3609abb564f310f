package miniapp

import (
	"net/http"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestMetrics(t *testing.T) {
	a := newApp(t, "", func(h *Handler) { h.LoginLimit = &LoginLimit{Failures: 1, Window: caddy.Duration(time.Minute)} })
	counters := map[string]prometheus.Collector{
		"success": metrics.logins.WithLabelValues("success"), "failure": metrics.logins.WithLabelValues("failure"),
		"throttled": metrics.logins.WithLabelValues("throttled"), "logouts": metrics.logouts,
		"malformed": metrics.rejections.WithLabelValues("malformed"), "expired": metrics.rejections.WithLabelValues("expired"),
		"revoked": metrics.rejections.WithLabelValues("revoked"),
	}
	before := map[string]float64{}
	for k, c := range counters {
		before[k] = testutil.ToFloat64(c)
	}

	c := a.login("ada", adaPassword, false)
	a.do(request{target: "/profile", cookie: &http.Cookie{Name: "miniapp_session", Value: "garbage"}})
	a.do(request{method: "POST", target: "/logout", cookie: c})
	a.do(request{target: "/profile", cookie: c})
	old := a.login("ada", adaPassword, false)
	a.do(request{method: "POST", target: "/login", contentType: form, body: "username=ada&password=wrong"})
	a.do(request{method: "POST", target: "/login", contentType: form, body: "username=ada&password=wrong"})
	a.advance(13 * time.Hour)
	a.do(request{target: "/profile", cookie: old})

	want := map[string]float64{"success": 2, "failure": 1, "throttled": 1, "logouts": 1, "malformed": 1, "expired": 1, "revoked": 1}
	for k, c := range counters {
		if got := testutil.ToFloat64(c) - before[k]; got != want[k] {
			t.Errorf("%s: +%v, want +%v", k, got, want[k])
		}
	}
}
