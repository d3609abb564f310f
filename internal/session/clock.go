package session

import (
	"sync/atomic"
	"time"
)

// Clock is a source of time: the system clock plus an offset that tests
// move forward instead of sleeping.
type Clock struct {
	offset atomic.Int64
}

// Now returns the current time.
func (c *Clock) Now() time.Time {
	return time.Now().Add(time.Duration(c.offset.Load()))
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.offset.Add(int64(d))
}
