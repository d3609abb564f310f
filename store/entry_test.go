package store

import (
	"strings"
	"testing"
	"time"
)

// TestSessionEntryText writes an entry as a store keeps it and reads it
// back; a forged device name or address does not come through.
func TestSessionEntryText(t *testing.T) {
	e := indexEntry(AccountID(random(16)), time.Unix(1_800_000_000, 0))
	e.Device = "Safari on iPhone"
	got, ok := ParseEntry(e.String())
	if !ok || got != e {
		t.Fatalf("read back %+v (%v), want %+v", got, ok, e)
	}
	e.Address, e.Device = "<b>x</b>", "<script>alert(1)</script> on Linux"
	got, ok = ParseEntry(e.String())
	if !ok || got.Address != "" || got.Device != "Browser on Linux" {
		t.Errorf("forged entry read as address %q, device %q", got.Address, got.Device)
	}
	for _, address := range []string{"fe80::1%eth0", "fe80::1%\x1b[31m", "10.0.0.1\x1b[2J", "::FFFF:10.0.0.1", "010.000.000.001"} {
		e.Address = address
		if got, ok := ParseEntry(e.String()); !ok || got.Address != "" {
			t.Errorf("address %q read as %q (%v); want none", address, got.Address, ok)
		}
	}
	for _, address := range []string{"10.0.0.1", "2001:db8::1"} {
		e.Address = address
		if got, ok := ParseEntry(e.String()); !ok || got.Address != address {
			t.Errorf("address %q read as %q (%v)", address, got.Address, ok)
		}
	}
	e.Factors = 2
	if got, ok := ParseEntry(e.String()); !ok || got.Factors != 2 {
		t.Errorf("factors read back as %d (%v)", got.Factors, ok)
	}
	e.Via = "github"
	if got, ok := ParseEntry(e.String()); !ok || got.Via != "github" || got.Factors != 2 {
		t.Errorf("a provider's session read back as %+v (%v)", got, ok)
	}
	if got, ok := ParseEntry(strings.Replace(e.String(), ":github ", ":Git<b>Hub ", 1)); !ok || got.Via != "" {
		t.Errorf("a forged provider read as %q (%v)", got.Via, ok)
	}
	e.Via = ""
	old := strings.Replace(e.String(), ":2 ", " ", 1)
	if got, ok := ParseEntry(old); !ok || got.Factors != 1 || got.Generation != e.Generation {
		t.Errorf("an entry written before factors: %+v (%v)", got, ok)
	}
	threeFactors := strings.Replace(e.String(), ":2 ", ":3 ", 1)
	top := e
	top.Counter = MaxCounter + 1
	late := e
	late.Expires = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
	backwards := e
	backwards.Expires = e.Started.Add(-time.Second)
	for _, bad := range []string{"", "x y z", e.String()[1:], "0011 " + e.String()[5:], late.String(), backwards.String(), top.String(), threeFactors} {
		if _, ok := ParseEntry(bad); ok {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestParseCounterAndTime(t *testing.T) {
	for s, ok := range map[string]bool{"0": true, "1073741824": true, "1073741825": false, "4294967295": false, "-1": false, "x": false} {
		if _, got := ParseCounter(s); got != ok {
			t.Errorf("counter %q: %v, want %v", s, got, ok)
		}
	}
	for s, ok := range map[string]bool{"0": true, "253402300799": true, "253402300800": false, "-1": false, "1e3": false} {
		if _, got := ParseTime(s); got != ok {
			t.Errorf("time %q: %v, want %v", s, got, ok)
		}
	}
}
