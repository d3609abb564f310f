package miniapp

import (
	"context"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
)

// TestHashSlots: while every password-check slot is taken, a login waits
// for one, then is refused with 429 and charged to the client; a freed
// slot lets the next login through.
func TestHashSlots(t *testing.T) {
	checks := newHashLimit(2, 300*time.Millisecond)
	a := newApp(t, "", func(h *Handler) {
		h.LoginLimit = &LoginLimit{Failures: 2, Window: caddy.Duration(time.Minute)}
		h.checks = checks
	})
	for range 2 {
		if err := checks.acquire(context.Background(), false); err != nil {
			t.Fatal(err)
		}
	}
	login := request{method: "POST", target: "/login", contentType: form, body: "username=ada&password=" + adaPassword}
	w := a.do(login)
	if w.Code != 429 || w.Header().Get("Retry-After") != "1" || len(w.Result().Cookies()) != 0 {
		t.Errorf("with every slot taken: %d Retry-After %q", w.Code, w.Header().Get("Retry-After"))
	}
	go func() {
		time.Sleep(20 * time.Millisecond)
		checks.release()
	}()
	if w := a.do(login); w.Code != 303 {
		t.Errorf("after a slot was freed: %d", w.Code)
	}
	checks.release()

	// the refusal was charged: with a limit of one, it throttles
	strict := newApp(t, "", func(h *Handler) {
		h.LoginLimit = &LoginLimit{Failures: 1, Window: caddy.Duration(time.Minute)}
		h.checks = newHashLimit(1, 50*time.Millisecond)
	})
	_ = strict.h.checks.acquire(context.Background(), false)
	strict.do(login)
	strict.h.checks.release()
	if w := strict.do(login); w.Code != 429 || w.Body.String() != "too many failed logins; try again later\n" {
		t.Errorf("after a refusal for want of a slot: %d %q", w.Code, w.Body.String())
	}
}

// TestHashLimitKnownFirst hands a freed slot to a known device's check
// before anonymous checks that queued earlier, and each queue in order.
func TestHashLimitKnownFirst(t *testing.T) {
	l := newHashLimit(1, 10*time.Second)
	if err := l.acquire(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	order := make(chan string, 3)
	queue := func(name string, known bool, ahead int) {
		go func() {
			if err := l.acquire(context.Background(), known); err != nil {
				order <- name + " refused"
				return
			}
			order <- name
		}()
		for {
			l.mu.Lock()
			n := len(l.known) + len(l.anonymous)
			l.mu.Unlock()
			if n == ahead+1 {
				return
			}
			time.Sleep(time.Millisecond)
		}
	}
	queue("anonymous 1", false, 0)
	queue("anonymous 2", false, 1)
	queue("known", true, 2)
	for _, want := range []string{"known", "anonymous 1", "anonymous 2"} {
		l.release()
		if got := <-order; got != want {
			t.Fatalf("slot went to %s, want %s", got, want)
		}
	}
	l.release()
	if l.free != 1 {
		t.Errorf("%d slots free after every check, want 1", l.free)
	}
}

// TestHashLimitTimeout refuses a check that waited too long, and a slot
// freed as the wait ends is not lost.
func TestHashLimitTimeout(t *testing.T) {
	l := newHashLimit(1, 20*time.Millisecond)
	_ = l.acquire(context.Background(), false)
	if err := l.acquire(context.Background(), true); err != errNoSlot {
		t.Fatalf("waited past the limit: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := l.acquire(ctx, false); err != errNoSlot {
		t.Fatalf("request ended: %v", err)
	}
	l.release()
	if l.free != 1 || len(l.known)+len(l.anonymous) != 0 {
		t.Errorf("free %d, waiting %d", l.free, len(l.known)+len(l.anonymous))
	}
}
