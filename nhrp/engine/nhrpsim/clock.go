package nhrpsim

import "time"

// Clock is a fake clock. It only moves when the test sets it.
type Clock struct{ now time.Time }

// NewClock returns a clock at t.
func NewClock(t time.Time) *Clock { return &Clock{now: t} }

// Now returns the current fake time.
func (c *Clock) Now() time.Time { return c.now }

// Set moves the clock to t.
func (c *Clock) Set(t time.Time) { c.now = t }
