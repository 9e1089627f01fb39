package controller

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/dmvpnd/dmvpnd/nhrp/engine"
)

// MulticastCapture is the kernel's multicast capture (kernel.MulticastTrap).
type MulticastCapture interface {
	Install(ifindex int) error
	Remove() error
	Packets(ctx context.Context) (<-chan []byte, error)
}

// multicastRecompute bounds how often the target set is derived from the
// engine's cache (O(cache) each time): a registration storm on a large hub
// recomputes it at most this often.
const multicastRecompute = 500 * time.Millisecond

// multicastState is the loop's side of replication.
type multicastState struct {
	rep   *replicator // nil: replication off
	dirty bool
	last  time.Time
	timer *time.Timer
	cur   []netip.Addr // published to the replicator: never written again
	spare []netip.Addr // the next recompute's buffer, kept while cur is unchanged
}

// startMulticast installs the capture and starts the replicator when the
// config selects any target. The returned stop removes the capture.
func (c *Controller) startMulticast(ctx context.Context, wg *sync.WaitGroup) (func(), error) {
	mc := c.config().NHRP.Multicast
	if c.deps.Multicast == nil || c.deps.ListenMulticast == nil || !mc.Enabled() {
		return func() {}, nil
	}
	send, err := c.deps.ListenMulticast(c.ifindex)
	if err != nil {
		return nil, fmt.Errorf("controller: %w", err)
	}
	if err := c.deps.Multicast.Install(c.ifindex); err != nil {
		_ = send.Close()
		return nil, fmt.Errorf("controller: %w", err)
	}
	stop := func() {
		if err := c.deps.Multicast.Remove(); err != nil {
			c.log.Warn("removing multicast capture", zap.Error(err))
		}
		_ = send.Close()
	}
	pkts, err := c.deps.Multicast.Packets(ctx)
	if err != nil {
		stop()
		return nil, fmt.Errorf("controller: %w", err)
	}
	rep := newReplicator(send, c.deps.Clock.Now, mc.Rate, mc.Burst, c.log.Named("multicast"))
	c.mcast.rep, c.mcast.dirty = rep, true
	c.mcastRep.Store(rep)
	wg.Add(1)
	go func() { defer wg.Done(); rep.run(ctx, pkts) }()
	return stop, nil
}

// multicastTargets derives the NBMA addresses that get a copy from the
// engine's state: registered spokes (dynamic) and NHSs (nhs) at the address
// their neighbor entry sends GRE to, plus the static ones. With IPsec only
// NBMAs the engine holds proven by an SA are kept: a copy to any other
// would leave in clear (and the GRE guard would drop it). It walks the
// cache without a copy and appends to buf[:0]: a hub's periodic recompute
// that finds nothing changed allocates nothing.
func (c *Controller) multicastTargets(buf []netip.Addr) []netip.Addr {
	mc := c.config().NHRP.Multicast
	out := buf[:0]
	for e := range c.eng.Peers() {
		if e.Bound.IsValid() && (mc.Dynamic && e.Kind == engine.KindRegistered || mc.NHS && e.Kind == engine.KindNHS) {
			out = append(out, e.Bound)
		}
	}
	out = append(out, mc.Static...)
	if c.deps.IPsec != nil {
		out = slices.DeleteFunc(out, func(a netip.Addr) bool { return !c.eng.Proven(a) })
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return slices.Compact(out)
}

// reconcileMulticast publishes a new target set when engine or IPsec state
// changed, at most every multicastRecompute (a timer nudges the loop for
// the deferred one). It runs on the loop.
func (c *Controller) reconcileMulticast() {
	m := &c.mcast
	if m.rep == nil || !m.dirty {
		return
	}
	now := time.Now()
	if wait := multicastRecompute - now.Sub(m.last); wait > 0 {
		if m.timer == nil {
			m.timer = time.AfterFunc(wait, c.nudge)
		}
		return
	}
	m.dirty, m.last, m.timer = false, now, nil
	t := c.multicastTargets(m.spare)
	if slices.Equal(t, m.cur) {
		m.spare = t
		return
	}
	c.log.Info("multicast targets", zap.Int("peers", len(t)))
	m.cur, m.spare = t, nil
	m.rep.setTargets(t)
}

// nudge wakes the loop without blocking.
func (c *Controller) nudge() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// newMulticastCollector exports the replication counters.
func newMulticastCollector(c *Controller) *labelledCounter {
	return newLabelledCounter("dmvpnd_multicast_packets_total",
		"Multicast replication: packets captured, copies sent, copies refused by the per-peer rate limit or the kernel, packets without target.",
		"result", func() []labelledCount {
			r := c.mcastRep.Load()
			if r == nil {
				return nil
			}
			return []labelledCount{
				{"captured", r.packets.Load()}, {"copied", r.copies.Load()}, {"rate_limited", r.limited.Load()},
				{"send_error", r.errors.Load()}, {"no_target", r.noTargets.Load()},
			}
		})
}
