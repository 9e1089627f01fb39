package controller

import (
	"context"
	"errors"
	"net/netip"
	"time"

	"go.uber.org/zap"

	"github.com/dmvpnd/dmvpnd/ipsec"
	"github.com/dmvpnd/dmvpnd/kernel"
	"github.com/dmvpnd/dmvpnd/nhrp/engine"
)

// packet is one NHRP packet read from the tunnel.
type packet struct {
	from netip.Addr
	b    []byte
}

// inputs are the channels the loop selects on; a nil channel is never ready.
type inputs struct {
	packets  chan packet
	misses   <-chan kernel.Miss
	hairpins <-chan kernel.Hairpin
	ipsec    <-chan ipsec.Event
}

// maxPacket bounds an NHRP packet read from the socket (the tunnel MTU is
// far below it).
const maxPacket = 9000

// readPackets copies packets off the socket until ctx ends or the socket
// fails. The loop drops nothing here: a full channel blocks the reader and
// the kernel's socket buffer absorbs bursts.
func (c *Controller) readPackets(ctx context.Context, out chan<- packet) {
	go func() {
		<-ctx.Done()
		_ = c.conn.Close()
	}()
	buf := make([]byte, maxPacket)
	for {
		n, from, err := c.conn.ReadFrom(buf)
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, context.Canceled) {
				c.log.Error("reading NHRP socket", zap.Error(err))
			}
			return
		}
		p := packet{from: from, b: append([]byte(nil), buf[:n]...)}
		select {
		case out <- p:
		case <-ctx.Done():
			return
		}
	}
}

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
		if c.dirty.routes || c.dirty.ipsec || c.dirty.bind || c.routesFailed {
			if retry == nil {
				retry = time.After(c.retry.next())
			}
		} else {
			c.retry.reset()
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
		case p := <-in.packets:
			c.countPacket(p.b, false)
			if ignoresIndication(c.config(), p.b) {
				c.stats.inc("traffic_indications_ignored")
				continue
			}
			c.syncProtections()
			c.handlePacket(p)
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
			if c.config().NHRP.Redirect {
				c.eng.Hairpin(h.Packet)
			}
		case ev := <-in.ipsec:
			c.onIPsecEvent(ev)
		case <-engineTimer.C:
			c.eng.Tick()
		case <-resync.C:
			c.dirty = dirtySet{routes: true, ipsec: true, bind: true}
			if c.deps.Guard != nil {
				c.deps.Guard.InvalidateBoundSources()
			}
			c.mcast.dirty = true
			c.rebindAll()
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

// rebindAll re-programs the permanent neighbor entries the engine holds,
// repairing entries removed behind dmvpnd's back. Resolved peers' REACHABLE
// entries are left alone: rewriting them would reset the kernel's
// reachability timer and hide whether traffic still uses them.
func (c *Controller) rebindAll() {
	b := engineBinder{c}
	for _, e := range c.eng.Cache() {
		if e.Bound.IsValid() && e.Kind.Permanent() {
			_ = b.Bind(engine.Binding{Proto: e.Proto, NBMA: e.Bound, Claimed: e.Claimed, Observed: e.Observed, Kind: e.Kind})
		}
	}
}
