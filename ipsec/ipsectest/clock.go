// Package ipsectest has fakes for code that uses package ipsec: a manual
// Clock and a Protector that records the desired peers.
package ipsectest

import (
	"errors"
	"sync"
	"time"

	"github.com/dmvpnd/dmvpnd/ipsec"
)

// Clock is a manual ipsec.Clock. Timers fire when Advance moves time past
// their deadline; stopped timers are forgotten, so Pending and
// WaitForWaiter see only live timers.
type Clock struct {
	mu      sync.Mutex
	now     time.Time
	timers  map[*timer]struct{}
	changed chan struct{}
}

var _ ipsec.Clock = (*Clock)(nil)

type timer struct {
	c  *Clock
	at time.Time
	ch chan time.Time
}

func (t *timer) C() <-chan time.Time { return t.ch }

func (t *timer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	_, ok := t.c.timers[t]
	delete(t.c.timers, t)
	return ok
}

// NewClock returns a clock set to start.
func NewClock(start time.Time) *Clock {
	return &Clock{now: start, timers: map[*timer]struct{}{}, changed: make(chan struct{})}
}

// Now returns the current fake time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// NewTimer returns a timer that fires when the clock has advanced by d.
func (c *Clock) NewTimer(d time.Duration) ipsec.Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &timer{c: c, at: c.now.Add(d), ch: make(chan time.Time, 1)}
	if d <= 0 {
		t.ch <- c.now
		return t
	}
	c.timers[t] = struct{}{}
	close(c.changed)
	c.changed = make(chan struct{})
	return t
}

// Advance moves time forward by d and fires due timers.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	for t := range c.timers {
		if !t.at.After(c.now) {
			t.ch <- c.now
			delete(c.timers, t)
		}
	}
}

// Pending returns the number of live timers.
func (c *Clock) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}

// ErrTimeout is returned by WaitForWaiter when no timer was set in time.
var ErrTimeout = errors.New("ipsectest: timed out")

// WaitForWaiter blocks until a live timer is due at or before
// Now()+within (so that Advance(within) fires it), or timeout (real time)
// passes.
func (c *Clock) WaitForWaiter(within, timeout time.Duration) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		ch := c.changed
		limit := c.now.Add(within)
		found := false
		for t := range c.timers {
			if !t.at.After(limit) {
				found = true
			}
		}
		c.mu.Unlock()
		if found {
			return nil
		}
		select {
		case <-ch:
		case <-deadline.C:
			return ErrTimeout
		}
	}
}
