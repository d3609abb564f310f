package miniapp

import (
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
)

// try reserves an attempt that stays counted as a failure, and returns
// how long the client must wait (0 when the attempt was allowed).
func (t *throttle) try(ip string, now time.Time) time.Duration {
	at, wait, _ := t.reserve(clientKey(ip), now)
	if at != nil {
		at.done(true)
	}
	return wait
}

// fail makes n failed attempts of the client at now.
func (t *throttle) fail(ip string, now time.Time, n int) {
	for i := 0; i < n; i++ {
		t.try(ip, now)
	}
}

func (t *throttle) size() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.clients)
}

func TestThrottleWindow(t *testing.T) {
	th := newThrottle(3, time.Minute, maxThrottleClients)
	now := time.Unix(1000, 0)
	for i := 0; i < 3; i++ {
		if w := th.try("198.51.100.1", now.Add(time.Duration(i)*time.Second)); w != 0 {
			t.Fatalf("attempt %d throttled", i+1)
		}
	}
	if w := th.try("198.51.100.1", now.Add(10*time.Second)); w != 50*time.Second {
		t.Fatalf("after 3 failures: wait %v, want 50s", w)
	}
	if w := th.try("198.51.100.2", now); w != 0 {
		t.Fatal("another client throttled")
	}
	if w := th.try("198.51.100.1", now.Add(time.Minute)); w != 0 {
		t.Fatalf("window passed: wait %v", w)
	}
}

func TestThrottleSettled(t *testing.T) {
	th := newThrottle(2, time.Minute, maxThrottleClients)
	now := time.Unix(1000, 0)
	th.fail("198.51.100.1", now, 1)
	for i := 0; i < 5; i++ { // successes neither count nor reset
		at, wait, _ := th.reserve(clientKey("198.51.100.1"), now)
		if at == nil {
			t.Fatalf("success %d throttled for %v", i+1, wait)
		}
		at.done(false)
	}
	th.fail("198.51.100.1", now, 1)
	if th.try("198.51.100.1", now) == 0 {
		t.Fatal("two failures around successes not throttled")
	}
}

func TestThrottleIPv6(t *testing.T) {
	th := newThrottle(2, time.Minute, maxThrottleClients)
	now := time.Unix(1000, 0)
	th.fail("2001:db8:0:1::1", now, 1)
	th.fail("2001:db8:0:1:ffff::2", now, 1)
	if th.try("2001:db8:0:1::99", now) == 0 {
		t.Error("addresses of one /64 counted apart")
	}
	if th.try("2001:db8:0:2::1", now) != 0 {
		t.Error("another /64 throttled")
	}
	th.fail("::ffff:192.0.2.1", now, 1)
	th.fail("192.0.2.1", now, 1)
	if th.try("192.0.2.1", now) == 0 {
		t.Error("IPv4-mapped address counted apart from IPv4")
	}
}

func TestThrottleBounded(t *testing.T) {
	th := newThrottle(5, time.Minute, 100)
	now := time.Unix(1000, 0)
	th.fail("203.0.113.9", now, 5)
	for i := 0; i < 20000; i++ {
		th.fail(fmt.Sprintf("10.%d.%d.%d", i>>16, (i>>8)&255, i&255), now, 1)
		if th.size() > 100 {
			t.Fatalf("%d entries after %d addresses", th.size(), i+1)
		}
	}
	if th.try("203.0.113.9", now) == 0 {
		t.Error("the flood pushed the throttled client out")
	}
}

// TestThrottleConcurrent sends many wrong passwords at once: no more
// than the limit may reach the password check.
func TestThrottleConcurrent(t *testing.T) {
	a := newApp(t, "", func(h *Handler) { h.LoginLimit = &LoginLimit{Failures: 3, Window: caddy.Duration(time.Minute)} })
	codes := make(chan int, 20)
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes <- a.do(request{method: "POST", target: "/login", contentType: form, body: "username=ada&password=wrong"}).Code
		}()
	}
	wg.Wait()
	close(codes)
	count := map[int]int{}
	for c := range codes {
		count[c]++
	}
	// one check in flight per client: the others are refused and
	// charged, so between one and the limit reach the password check
	if count[401] < 1 || count[401] > 3 || count[401]+count[429] != 20 {
		t.Errorf("statuses %v, want 1 to 3 × 401 and the rest 429", count)
	}
}

func TestLoginThrottled(t *testing.T) {
	a := newApp(t, "", func(h *Handler) { h.LoginLimit = &LoginLimit{Failures: 3, Window: caddy.Duration(time.Minute)} })
	for i := 0; i < 2; i++ {
		if w := a.do(request{method: "POST", target: "/login", contentType: form, body: "username=ada&password=wrong"}); w.Code != 401 {
			t.Fatalf("failure %d: %d", i+1, w.Code)
		}
	}
	a.login("ada", adaPassword, false) // not counted, not reset
	a.login("ada", adaPassword, false)
	w := a.do(request{method: "POST", target: "/login", contentType: form, body: "username=ada&password=wrong"})
	if w.Code != 401 {
		t.Fatalf("third failure: %d", w.Code)
	}
	w = a.do(request{method: "POST", target: "/login", contentType: form, body: "username=ada&password=" + adaPassword})
	retry, _ := strconv.Atoi(w.Header().Get("Retry-After"))
	if w.Code != http.StatusTooManyRequests || retry < 59 || retry > 60 || len(w.Result().Cookies()) != 0 {
		t.Fatalf("right password while throttled: %d Retry-After %q", w.Code, w.Header().Get("Retry-After"))
	}
	if w.Body.String() != "too many failed logins; try again later\n" {
		t.Errorf("body %q", w.Body.String())
	}
	checkCommonHeaders(t, w)
	last := a.logs.All()[a.logs.Len()-1]
	if last.Message != "login throttled" || last.Level.String() != "warn" || last.ContextMap()["user"] != "ada" || last.ContextMap()["client_ip"] != a.ip {
		t.Errorf("throttled attempt logged as %s %q %v", last.Level, last.Message, last.ContextMap())
	}
	assertNoSecrets(t, a, adaPassword)

	a.advance(time.Minute)
	if w := a.do(request{method: "POST", target: "/login", contentType: form, body: "username=ada&password=" + adaPassword}); w.Code != 303 {
		t.Fatalf("after the window: %d", w.Code)
	}
}

// TestThrottleOneInFlight allows one attempt of a client at a time; the
// one refused meanwhile counts as a failure, and other clients go on.
func TestThrottleOneInFlight(t *testing.T) {
	th := newThrottle(2, time.Minute, maxThrottleClients)
	now := time.Unix(1000, 0)
	first, _, err := th.reserve("198.51.100.1", now)
	if err != nil {
		t.Fatal(err)
	}
	if at, wait, err := th.reserve("198.51.100.1", now); at != nil || err != errInFlight || wait != time.Second {
		t.Fatalf("second attempt while one is in flight: %v %v %v", at, wait, err)
	}
	if at, _, err := th.reserve("198.51.100.2", now); at == nil || err != nil {
		t.Fatalf("another client refused: %v", err)
	}
	first.done(false)
	// the refused attempt was charged: one more failure reaches the limit
	if at, _, err := th.reserve("198.51.100.1", now); at == nil || err != nil {
		t.Fatalf("attempt after the first settled: %v", err)
	} else {
		at.done(true)
	}
	if _, _, err := th.reserve("198.51.100.1", now); err != errLimited {
		t.Errorf("after one charged refusal and one failure: %v, want the limit", err)
	}
}
