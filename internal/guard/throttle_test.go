package guard

import (
	"fmt"
	"testing"
	"time"
)

// try reserves an attempt that stays counted as a failure, and returns
// how long the client must wait (0 when the attempt was allowed).
func (t *Throttle) try(ip string, now time.Time) time.Duration {
	at, wait, _ := t.reserve(ClientKey(ip), now)
	if at != nil {
		at.done(true)
	}
	return wait
}

// fail makes n failed attempts of the client at now.
func (t *Throttle) fail(ip string, now time.Time, n int) {
	for i := 0; i < n; i++ {
		t.try(ip, now)
	}
}

func (t *Throttle) size() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.clients)
}

func TestThrottleWindow(t *testing.T) {
	th := newThrottle(3, time.Minute, throttleClients)
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
	th := newThrottle(2, time.Minute, throttleClients)
	now := time.Unix(1000, 0)
	th.fail("198.51.100.1", now, 1)
	for i := 0; i < 5; i++ { // successes neither count nor reset
		at, wait, _ := th.reserve(ClientKey("198.51.100.1"), now)
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
	th := newThrottle(2, time.Minute, throttleClients)
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

// TestThrottleLimited tells a client that used up its failures how long
// to wait, without reserving an attempt.
func TestThrottleLimited(t *testing.T) {
	th := newThrottle(2, time.Minute, throttleClients)
	now := time.Unix(1000, 0)
	if _, limited := th.limited("198.51.100.1", now); limited {
		t.Fatal("a new client limited")
	}
	th.fail("198.51.100.1", now, 2)
	if wait, limited := th.limited(ClientKey("198.51.100.1"), now.Add(10*time.Second)); !limited || wait != 50*time.Second {
		t.Errorf("after 2 failures: %v %v, want 50s", wait, limited)
	}
	if _, limited := th.limited(ClientKey("198.51.100.1"), now.Add(time.Minute)); limited {
		t.Error("limited after the window")
	}
}
