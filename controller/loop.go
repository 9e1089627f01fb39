package controller

import (
	"context"
	"errors"
	"net/netip"
	"time"

	"github.com/dmvpnd/dmvpnd/ipsec"
	"github.com/dmvpnd/dmvpnd/kernel"
)

// packet is one NHRP packet read from the tunnel.
type packet struct {
	from netip.Addr
	b    []byte
}

// inputs are the channels the loop selects on; a nil channel is never ready.
type inputs struct {
	packets  chan []packet
	misses   <-chan kernel.Miss
	hairpins <-chan kernel.Hairpin
	ipsec    <-chan ipsec.Event
}

// maxPacket bounds an NHRP packet read from the socket (the tunnel MTU is
// far below it).
const maxPacket = 9000

// loop is the controller's single owner goroutine.
func (c *Controller) loop(ctx context.Context, in inputs) error {
	engineTimer := time.NewTimer(time.Hour)
	defer engineTimer.Stop()
	resync := time.NewTicker(resyncInterval)
	defer resync.Stop()
	var retry <-chan time.Time
	for {
		c.reconcile(ctx)
		c.readyOnce.Do(func() { close(c.ready) })
		c.reconcileMulticast()
		if c.dirty.routes || c.dirty.ipsec || c.dirty.qos || c.dirty.bind || c.dirty.steer || c.routesFailed {
			if retry == nil {
				retry = time.After(c.retry.Next())
			}
		} else {
			c.retry.Reset()
			retry = nil
		}
		if d, ok := c.eng.NextDeadline(); ok {
			engineTimer.Reset(max(d.Sub(c.deps.Clock.Now()), 0))
		} else {
			engineTimer.Reset(time.Hour)
		}
		select {
		case <-ctx.Done():
			return nil
		case ps := <-in.packets:
			c.handleBatch(ps)
		case m, ok := <-in.misses:
			if !ok {
				// The watcher closes its channel when ctx ends; select
				// may pick that over ctx.Done(). Only a close while
				// running is a failure.
				if ctx.Err() != nil {
					return nil
				}
				return errors.New("controller: neighbor miss watcher stopped")
			}
			c.stats.inc("kernel_neighbor_misses")
			c.onNeighborMiss(m)
		case h, ok := <-in.hairpins:
			if !ok {
				in.hairpins = nil
				if ctx.Err() != nil {
					continue
				}
				c.log.Error("hairpin trigger stopped: no more traffic indications")
				continue
			}
			c.stats.inc("kernel_hairpins")
			c.onHairpin(h)
		case ev := <-in.ipsec:
			c.onIPsecEvent(ev)
		case <-engineTimer.C:
			c.eng.Tick()
		case <-resync.C:
			c.resync()
		case <-retry:
			retry = nil
			c.dirty.routes = c.dirty.routes || c.routesFailed
		case <-c.adopt.expiry():
			c.expireAdoption()
		case <-c.wake:
			c.takeBGPRoutes()
		case f := <-c.reqs:
			f()
		}
	}
}

// run executes f on the loop goroutine and waits for it.
func (c *Controller) run(ctx context.Context, f func()) error {
	done := make(chan struct{})
	select {
	case c.reqs <- func() { f(); close(done) }:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
