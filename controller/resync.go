package controller

import (
	"net/netip"

	"go.uber.org/zap"

	"github.com/dmvpnd/dmvpnd/kernel"
)

// neighborResync is the state the periodic neighbor repair reuses, so that
// a resync that finds nothing to change allocates nothing. Loop only.
type neighborResync struct {
	want  map[netip.Addr]netip.Addr // proto -> lladdr still to be found
	ops   []kernel.NeighborOp
	visit func(kernel.Neighbor) // crosses off what the kernel has; made once
}

// resyncNeighbors repairs the permanent neighbor entries the engine holds
// (registered clients, NHSs) that were removed or changed behind dmvpnd's
// back: one dump of the tunnel's entries, compared with the engine's
// bindings, and only the missing or different entries written, in one
// batch. Resolved peers' REACHABLE entries are left alone: rewriting them
// would reset the kernel's reachability timer and hide whether traffic
// still uses them. Entries the engine does not hold are left alone too
// (adoption removes a previous run's leftovers). Loop only.
func (c *Controller) resyncNeighbors() {
	r := &c.nresync
	if r.want == nil {
		r.want = map[netip.Addr]netip.Addr{}
		r.visit = func(n kernel.Neighbor) {
			if nbma, ok := r.want[n.Addr]; ok && nbma == n.NBMA && n.Permanent() {
				delete(r.want, n.Addr)
			}
		}
	}
	clear(r.want)
	for e := range c.eng.Peers() {
		if e.Bound.IsValid() && e.Kind.Permanent() {
			r.want[e.Proto] = e.Bound
		}
	}
	if len(r.want) == 0 {
		return
	}
	if err := c.walkNeighbors(r.visit); err != nil {
		c.stats.inc("kernel_neighbor_errors")
		c.log.Warn("listing neighbors for the resync", zap.Error(err))
		return
	}
	if len(r.want) == 0 {
		return
	}
	r.ops = r.ops[:0]
	for addr, nbma := range r.want {
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
