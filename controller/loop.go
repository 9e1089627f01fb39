package controller

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"time"

	"github.com/dmvpnd/dmvpnd/ipsec"
	"github.com/dmvpnd/dmvpnd/kernel"
)

// packet is one NHRP packet read from the tunnel.
type packet struct {
	from netip.Addr
	b    []byte
	at   time.Time // when the kernel received it; zero when unknown
}

// inputs are the channels the loop selects on; a nil channel is never ready.
type inputs struct {
	misses   <-chan kernel.Miss
	hairpins <-chan kernel.Hairpin
	ipsec    <-chan ipsec.Event
	// ipsecChanged: the IPsec side published a new State (snapshotNotifier).
	ipsecChanged <-chan struct{}
}

// maxPacket bounds an NHRP packet read from the socket (the tunnel MTU is
// far below it).
const maxPacket = 9000

// loopState is what makes the loop one owner with two goroutines: the
// loop goroutine, which selects on every input but the NHRP socket, and
// the packet reader, which hands its batches to the engine itself rather
// than waking the loop goroutine for each (a goroutine hand-off per
// packet costs a thread wake-up and the idle P's spin: a third of a
// refresh's CPU in the lab). Whoever holds mu runs the loop's work; the
// loop goroutine holds it except while it waits in select.
type loopState struct {
	mu sync.Mutex
	// started is closed once the loop goroutine holds mu: the reader
	// handles nothing before Run's setup is done.
	started chan struct{}
	// stopped: the loop returned; the reader handles no more batches.
	stopped bool
	// engine fires at the engine's next deadline, retry when the
	// failed reconciles are due again (armed: it is set). Both are reset
	// by iterate, on either goroutine.
	engine, retry *time.Timer
	armed         bool
	// adoptWait is the adoption expiry the loop goroutine waits on; kick
	// makes it look again when the reader's batch changed it.
	adoptWait <-chan time.Time
	kick      chan struct{}
}

// loop is the controller's owner goroutine for everything but the NHRP
// socket's packets (handlePackets).
func (c *Controller) loop(ctx context.Context, in inputs) error {
	lt := &c.lt
	lt.mu.Lock()
	defer func() {
		lt.stopped = true
		lt.mu.Unlock()
	}()
	lt.engine = time.NewTimer(time.Hour)
	defer lt.engine.Stop()
	lt.retry = time.NewTimer(time.Hour)
	lt.retry.Stop()
	defer lt.retry.Stop()
	close(lt.started)
	resync := time.NewTicker(resyncInterval)
	defer resync.Stop()
	for {
		c.iterate(ctx)
		lt.adoptWait = c.adopt.expiry()
		lt.mu.Unlock()
		select {
		case <-ctx.Done():
			lt.mu.Lock()
			return nil
		case m, ok := <-in.misses:
			lt.mu.Lock()
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
			lt.mu.Lock()
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
			lt.mu.Lock()
			c.onIPsecEvent(ev)
		case <-in.ipsecChanged:
			// SAs no peer event reports (a hub's responder SAs) prove
			// their NBMAs now, not at the next packet: packets held
			// for them are handled at once.
			lt.mu.Lock()
			c.syncProtections()
		case <-lt.engine.C:
			lt.mu.Lock()
			c.eng.Tick()
		case <-resync.C:
			lt.mu.Lock()
			c.resync()
		case <-lt.retry.C:
			lt.mu.Lock()
			lt.armed = false
			c.dirty.routes = c.dirty.routes || c.routesFailed
		case <-lt.adoptWait:
			lt.mu.Lock()
			c.expireAdoption()
		case <-lt.kick:
			lt.mu.Lock()
		case <-c.wake:
			lt.mu.Lock()
			c.takeBGPRoutes()
		case f := <-c.reqs:
			lt.mu.Lock()
			f()
		}
	}
}

// iterate is what the loop does after every input: reconcile the
// desired state, mark the controller ready after the first time, and
// set the timers for the engine's next deadline and the retry of what
// failed to reconcile. Loop only (lt.mu held).
func (c *Controller) iterate(ctx context.Context) {
	c.reconcile(ctx)
	c.readyOnce.Do(func() { close(c.ready) })
	c.reconcileMulticast()
	lt := &c.lt
	if c.dirty.routes || c.dirty.ipsec || c.dirty.qos || c.dirty.bind || c.dirty.steer || c.routesFailed {
		if !lt.armed {
			lt.retry.Reset(c.retry.Next())
			lt.armed = true
		}
	} else {
		c.retry.Reset()
		if lt.armed {
			lt.retry.Stop()
			lt.armed = false
		}
	}
	if d, ok := c.eng.NextDeadline(); ok {
		lt.engine.Reset(max(d.Sub(c.deps.Clock.Now()), 0))
	} else {
		lt.engine.Reset(time.Hour)
	}
}

// handlePackets runs a batch of packets read by the reader on the loop:
// it takes the loop (lt.mu) from the loop goroutine's select, handles
// the batch and reconciles as the loop goroutine does after an input.
// False once the loop has stopped.
func (c *Controller) handlePackets(ctx context.Context, ps []packet) bool {
	lt := &c.lt
	lt.mu.Lock()
	if lt.stopped || ctx.Err() != nil {
		lt.mu.Unlock()
		return false
	}
	c.handleBatch(ps)
	c.iterate(ctx)
	// The timers are the loop goroutine's to wait on whoever reset them;
	// a new adoption expiry is a new channel it must be told of.
	kick := c.adopt.expiry() != lt.adoptWait
	lt.mu.Unlock()
	if kick {
		select {
		case lt.kick <- struct{}{}:
		default:
		}
	}
	return true
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
