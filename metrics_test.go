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
		"success": metrics.logins.WithLabelValues("miniapp", "success"), "failure": metrics.logins.WithLabelValues("miniapp", "failure"),
		"throttled": metrics.logins.WithLabelValues("miniapp", "throttled"), "logouts": metrics.logouts.WithLabelValues("miniapp"),
		"malformed": metrics.rejections.WithLabelValues("miniapp", "malformed"), "expired": metrics.rejections.WithLabelValues("miniapp", "expired"),
		"revoked": metrics.rejections.WithLabelValues("miniapp", "revoked"),
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

// TestMetricsFromTheStart: every series of a realm exists at 0 as soon
// as its handler registers, labelled with the realm.
func TestMetricsFromTheStart(t *testing.T) {
	reg := prometheus.NewRegistry()
	if err := metrics.register(reg, "zero-realm"); err != nil {
		t.Fatal(err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	series := 0
	for _, f := range families {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "realm" && l.GetValue() == "zero-realm" {
					series++
					if v := m.GetCounter().GetValue(); v != 0 {
						t.Errorf("%s %v starts at %v", f.GetName(), m.GetLabel(), v)
					}
				}
			}
		}
	}
	if want := 3 + 1 + 3 + 9; series != want {
		t.Errorf("%d series of the realm at the start, want %d", series, want)
	}
}
