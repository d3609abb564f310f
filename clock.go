package miniapp

import (
	"sync/atomic"
	"time"
)

// Clock is the module's source of time: the system clock plus an offset
// that tests move forward instead of sleeping.
type Clock struct {
	offset atomic.Int64
}

// Now returns the current time, whole seconds being what sessions keep.
func (c *Clock) Now() time.Time {
	return time.Now().Add(time.Duration(c.offset.Load()))
}

// clock is the one Clock of the process.
var clock = new(Clock)
