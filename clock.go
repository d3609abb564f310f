package miniapp

import (
	"sync/atomic"
	"time"
)

// clock is a handler's source of time: the system clock plus an offset
// that tests move forward instead of sleeping.
type clock struct {
	offset atomic.Int64
}

// now returns the current time.
func (c *clock) now() time.Time {
	return time.Now().Add(time.Duration(c.offset.Load()))
}
