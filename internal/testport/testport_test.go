package testport

import (
	"fmt"
	"net"
	"testing"
)

// TestFree: every port is below the range of outgoing connections and
// can be listened on by a server on every address.
func TestFree(t *testing.T) {
	low := outgoingLow()
	for range 50 {
		port := Free(t)
		if port < lowest || port >= low {
			t.Fatalf("port %d outside [%d, %d)", port, lowest, low)
		}
		l, err := net.Listen("tcp", fmt.Sprintf(":%d", port))
		if err != nil {
			t.Fatalf("port %d: %v", port, err)
		}
		_ = l.Close()
	}
}

// TestFreeSkipsBusy: a port a server holds is never picked.
func TestFreeSkipsBusy(t *testing.T) {
	var held []net.Listener
	busy := map[int]bool{}
	for range 200 {
		port := Free(t)
		l, err := net.Listen("tcp", fmt.Sprintf(":%d", port))
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, l)
		if busy[port] {
			t.Fatalf("port %d picked while held", port)
		}
		busy[port] = true
	}
	for _, l := range held {
		_ = l.Close()
	}
}

// TestFreeNeverTwice: a port handed out is not handed out again, though
// nothing listens on it (2,000 picks from about 22,000 ports would repeat
// some 80 times by chance).
func TestFreeNeverTwice(t *testing.T) {
	seen := map[int]bool{}
	for range 2000 {
		port := Free(t)
		if seen[port] {
			t.Fatalf("port %d handed out twice", port)
		}
		seen[port] = true
	}
}
