package controller

import (
	"net/netip"

	"go.uber.org/zap"

	"github.com/dmvpnd/dmvpnd/kernel"
)

// resync is the periodic full resync (resyncInterval): every outside
// system is marked dirty (the loop reconciles it next) and the neighbor
// table is repaired at once. Loop only.
func (c *Controller) resync() {
	c.dirty = dirtySet{routes: true, ipsec: true, qos: true, bind: true, steer: true}
	// SAs that changed with no event or packet since (charon listed after
	// a reconnection) reach the engine and the NAT steering at the latest
	// now.
	c.syncProtections()
	if c.deps.Guard != nil {
		c.deps.Guard.InvalidateBoundSources()
	}
	c.mcast.dirty = true
	c.resyncNeighbors()
}

// neighborResync is the state the periodic neighbor repair reuses, so that
// a resync that finds nothing to change allocates nothing and keeps
// nothing per entry between resyncs. Loop only.
type neighborResync struct {
	matched int
	visit   func(kernel.Neighbor) // counts the kernel entries that match; made once
	ops     []kernel.NeighborOp

	// clean: the last dump found every wanted entry (wanted of them) at
	// the dataplane's change generation gen; skips counts the resyncs
	// skipped since (neighborResyncSkips).
	clean  bool
	gen    uint64
	wanted int
	skips  int
}

// neighborResyncSkips is how many resyncs in a row may skip the dump
// while the dataplane reports no change on the tunnel: a full dump still
// runs every (neighborResyncSkips+1) x resyncInterval, in case a
// notification was lost in a way the kernel did not report.
const neighborResyncSkips = 9

// resyncNeighbors repairs the permanent neighbor entries the engine holds
// (registered clients, NHSs) that were removed or changed behind dmvpnd's
// back. One dump of the tunnel's entries counts those that match the
// engine's bindings (a lookup per entry); when all match, that is all.
// Otherwise a second dump, against the set of bindings built for it,
// finds the missing or different entries, written in one batch. Resolved
// peers' REACHABLE entries are left alone: rewriting them would reset the
// kernel's reachability timer and hide whether traffic still uses them.
// Entries the engine does not hold are left alone too (adoption removes
// a previous run's leftovers).
//
// With a dataplane that hears the kernel's neighbor notifications
// (kernel.NeighborChangeCounter), a resync skips even that dump when no
// entry of the tunnel changed since the last dump found them all as
// wanted, and the engine wants as many: an idle hub's resync then costs
// a walk of its bindings, not a dump of 10k entries. A change behind our
// back whose notification the watch had not read yet is repaired one
// resync later; at most neighborResyncSkips dumps are skipped in a row.
// Loop only.
func (c *Controller) resyncNeighbors() {
	r := &c.nresync
	if r.visit == nil {
		r.visit = func(n kernel.Neighbor) {
			if bound, ok := c.eng.PermanentBinding(n.Addr); ok && bound == n.NBMA && n.Permanent() {
				r.matched++
			}
		}
	}
	wanted := 0
	for range c.eng.PermanentBindings() {
		wanted++
	}
	if wanted == 0 {
		return
	}
	cc, counted := c.deps.Dataplane.(kernel.NeighborChangeCounter)
	var gen uint64
	if counted {
		gen, counted = cc.NeighborChanges()
	}
	if counted && r.clean && gen == r.gen && wanted == r.wanted && r.skips < neighborResyncSkips {
		r.skips++
		c.stats.inc("kernel_neighbor_resyncs_skipped")
		return
	}
	r.clean, r.skips = false, 0
	r.matched = 0
	if err := c.walkNeighbors(r.visit); err != nil {
		c.stats.inc("kernel_neighbor_errors")
		c.log.Warn("listing neighbors for the resync", zap.Error(err))
		return
	}
	if r.matched == wanted {
		r.clean, r.gen, r.wanted = counted, gen, wanted
		return
	}
	want := make(map[netip.Addr]netip.Addr, wanted-r.matched)
	for proto, bound := range c.eng.PermanentBindings() {
		want[proto] = bound
	}
	if err := c.walkNeighbors(func(n kernel.Neighbor) {
		if nbma, ok := want[n.Addr]; ok && nbma == n.NBMA && n.Permanent() {
			delete(want, n.Addr)
		}
	}); err != nil {
		c.stats.inc("kernel_neighbor_errors")
		c.log.Warn("listing neighbors for the resync", zap.Error(err))
		return
	}
	if len(want) == 0 {
		return // repaired in between (the engine wrote them)
	}
	r.ops = r.ops[:0]
	for addr, nbma := range want {
		r.ops = append(r.ops, kernel.NeighborOp{Addr: addr, NBMA: nbma, Permanent: true})
	}
	c.stats.add("kernel_neighbor_repairs", uint64(len(r.ops)))
	c.log.Info("repairing neighbor entries changed behind dmvpnd's back", zap.Int("entries", len(r.ops)))
	if nb, ok := c.batcher(); ok {
		for i, err := range nb.ApplyNeighbors(r.ops) {
			if err != nil {
				c.stats.inc("kernel_neighbor_errors")
				c.log.Warn("repairing neighbor", zap.Stringer("op", r.ops[i]), zap.Error(err))
			}
		}
		return
	}
	for _, op := range r.ops {
		if err := c.deps.Dataplane.ReplaceNeighbor(op.Addr, op.NBMA, true); err != nil {
			c.stats.inc("kernel_neighbor_errors")
			c.log.Warn("repairing neighbor", zap.Stringer("op", op), zap.Error(err))
		}
	}
}

// walkNeighbors visits the tunnel's entries, without a list when the
// dataplane can.
func (c *Controller) walkNeighbors(fn func(kernel.Neighbor)) error {
	if w, ok := c.deps.Dataplane.(kernel.NeighborWalker); ok {
		return w.WalkNeighbors(fn)
	}
	ns, err := c.deps.Dataplane.ListNeighbors()
	if err != nil {
		return err
	}
	for _, n := range ns {
		fn(n)
	}
	return nil
}
