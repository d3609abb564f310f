// Package testport picks TCP ports for the servers that tests start
// (Caddy, redis-server, nginx). Nothing outside tests uses it.
package testport

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// lowest is the lowest port Free picks.
const lowest = 10000

// given holds the ports Free has handed out in this process: a test
// may take several before it starts anything on them.
var given = struct {
	sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}

// Free is a TCP port that nothing listens on now, on any address, and
// that Free has not handed out before in this process. It is
// picked at random below the kernel's range of ports for outgoing
// connections: a port the kernel hands out for a listener on port 0 is
// in that range, and a client connection of a test running beside this
// one (another package's Redis pool) could take it as its own local port
// before the server binds it. A nil t makes a failure panic, for
// package variables.
func Free(t testing.TB) int {
	highest := outgoingLow() - 1
	given.Lock()
	defer given.Unlock()
	for range 1000 {
		port := lowest + rand.IntN(highest-lowest+1)
		if given.ports[port] {
			continue
		}
		l, err := net.Listen("tcp", fmt.Sprintf(":%d", port))
		if err != nil {
			continue
		}
		_ = l.Close()
		given.ports[port] = true
		return port
	}
	err := fmt.Errorf("no free TCP port between %d and %d", lowest, highest)
	if t == nil {
		panic(err)
	}
	t.Fatal(err)
	return 0
}

// outgoingLow is the lowest port of the kernel's range for outgoing
// connections: Linux's ip_local_port_range, or 32768 where it cannot be
// read or leaves too few ports below it.
func outgoingLow() int {
	const fallback = 32768
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return fallback
	}
	fields := strings.Fields(string(b))
	if len(fields) != 2 {
		return fallback
	}
	low, err := strconv.Atoi(fields[0])
	if err != nil || low < lowest+1000 {
		return fallback
	}
	return low
}
