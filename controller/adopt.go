package controller

import (
	"net/netip"
	"time"

	"go.uber.org/zap"

	"github.com/dmvpnd/dmvpnd/kernel"
	"github.com/dmvpnd/dmvpnd/nhrp/engine"
)

// adoptGrace bounds how long routes and dynamic neighbor entries that a
// previous run left in the kernel are kept without this run re-learning
// them (the usual BGP graceful-restart time). A shortcut is normally
// re-learnt within seconds of the first registration; a peer that is gone
// is dropped as soon as its resolution fails.
const adoptGrace = 2 * time.Minute

// adoptedRoute is a route a previous run installed, kept until re-learnt.
type adoptedRoute struct {
	r kernel.Route
	// resolving: a resolution for the shortcut's prefix was sent.
	resolving bool
}

// adoption is the kernel state found at start and not yet re-learnt. It is
// loop-owned.
type adoption struct {
	listed bool
	routes map[kernel.Route]*adoptedRoute
	// dynamic are REACHABLE-style entries of resolved peers (tunnel
	// address -> NBMA); permanent are NHS and registration entries.
	dynamic, permanent map[netip.Addr]netip.Addr
	// Deadlines (time package clock, like the loop's timers): routes and
	// dynamic entries after adoptGrace; permanent entries after the
	// holding time, by which every live client has registered again.
	graceEnd, permEnd time.Time
	timer             *time.Timer
}

// expiry is the channel of the adoption timer; nil (never ready) when no
// adoption is pending.
func (a *adoption) expiry() <-chan time.Time {
	if a.timer == nil {
		return nil
	}
	return a.timer.C
}

func isShortcutRoute(r kernel.Route) bool { return r.Metric == shortcutMetric && r.Via.IsValid() }

// adoptKernelState lists the routes and neighbor entries a previous run
// left and takes them over. It runs once, before the first route push;
// until it succeeds no route is pushed (a failed listing could otherwise
// prune what traffic uses).
func (c *Controller) adoptKernelState() bool {
	if c.adopt.listed {
		return true
	}
	routes, err := c.deps.Dataplane.ListRoutes()
	if err != nil {
		c.stats.inc("reconcile_errors_adopt")
		c.log.Warn("listing routes to adopt", zap.Error(err))
		return false
	}
	neighbors, err := c.deps.Dataplane.ListNeighbors()
	if err != nil {
		c.stats.inc("reconcile_errors_adopt")
		c.log.Warn("listing neighbors to adopt", zap.Error(err))
		return false
	}
	a := &c.adopt
	a.listed = true
	c.dirty.bind = true
	a.routes = map[kernel.Route]*adoptedRoute{}
	a.dynamic, a.permanent = map[netip.Addr]netip.Addr{}, map[netip.Addr]netip.Addr{}
	for _, r := range routes {
		a.routes[r] = &adoptedRoute{r: r}
	}
	for _, n := range neighbors {
		if !n.NBMA.IsValid() {
			continue // INCOMPLETE or FAILED: nothing to keep
		}
		if n.Permanent() {
			a.permanent[n.Addr] = n.NBMA
			continue
		}
		a.dynamic[n.Addr] = n.NBMA
		c.eng.Adopt(n.Addr, n.NBMA)
	}
	now := time.Now()
	hold := c.config().NHRP.HoldingTime
	if hold <= 0 {
		hold = engine.DefaultHoldingTime
	}
	a.graceEnd, a.permEnd = now.Add(adoptGrace), now.Add(max(hold, adoptGrace))
	if len(a.routes)+len(a.dynamic)+len(a.permanent) > 0 {
		c.log.Info("adopted kernel state of a previous run", zap.Int("routes", len(a.routes)),
			zap.Int("dynamic_neighbors", len(a.dynamic)), zap.Int("permanent_neighbors", len(a.permanent)),
			zap.Duration("grace", adoptGrace))
		c.armAdoption(now)
	}
	return true
}

// armAdoption sets the timer to the next pending deadline.
func (c *Controller) armAdoption(now time.Time) {
	a := &c.adopt
	var next time.Time
	if len(a.routes)+len(a.dynamic) > 0 {
		next = a.graceEnd
	} else if len(a.permanent) > 0 {
		next = a.permEnd
	}
	if a.timer != nil {
		a.timer.Stop()
		a.timer = nil
	}
	if !next.IsZero() {
		a.timer = time.NewTimer(max(next.Sub(now), 0))
	}
}

// settleAdoption hands adopted routes over to their owners, level-triggered
// on every reconcile: a shortcut route goes once the engine reports the
// shortcut up (it is then desired as the engine's own), or is dropped once
// the engine says the path is down or the prefix does not resolve; a BGP
// route goes once BGP delivers the same route. Resolutions for adopted
// shortcuts are sent as soon as an NHS is up.
func (c *Controller) settleAdoption() {
	a := &c.adopt
	if len(a.routes) == 0 {
		return
	}
	var (
		engineSC map[netip.Prefix]engine.ShortcutState
		nhsUp    bool
	)
	for key, ar := range a.routes {
		r := ar.r
		drop, why := false, ""
		if isShortcutRoute(r) {
			if engineSC == nil {
				engineSC = map[netip.Prefix]engine.ShortcutState{}
				for _, s := range c.eng.Shortcuts() {
					engineSC[s.Prefix] = s.State
				}
				for _, n := range c.eng.NHSs() {
					nhsUp = nhsUp || n.State == engine.NHSUp
				}
			}
			target := r.Dst.Masked().Addr()
			switch st := engineSC[r.Dst.Masked()]; {
			case !c.config().NHRP.Shortcut:
				drop, why = true, "shortcuts are off"
			case c.shortcuts[r.Dst.Masked()].IsValid():
				drop, why = true, "re-learnt"
			case st == engine.ShortcutDown || st == engine.ShortcutHubOnly:
				drop, why = true, "direct path "+st.String()
			case ar.resolving && c.eng.Negative(target):
				drop, why = true, "resolution failed"
			case !ar.resolving && nhsUp:
				ar.resolving = true
				c.log.Info("re-resolving adopted shortcut", zap.Stringer("prefix", r.Dst), zap.Stringer("via", r.Via))
				c.eng.Resolve(target)
			}
		} else {
			switch {
			case c.bgp == nil:
				drop, why = true, "bgp is off"
			case c.bgpHas(r):
				drop, why = true, "re-learnt"
			}
		}
		if drop {
			delete(a.routes, key)
			c.dirty.routes = true
			c.log.Info("adopted route handed over", zap.Stringer("route", r), zap.String("reason", why))
		}
	}
	if len(a.routes)+len(a.dynamic)+len(a.permanent) == 0 {
		c.armAdoption(time.Now())
	}
}

func (c *Controller) bgpHas(r kernel.Route) bool {
	for _, b := range c.bgpRoutes {
		if b.Prefix.Masked() == r.Dst.Masked() && b.Metric == r.Metric {
			return true
		}
	}
	return false
}

// withAdopted adds the adopted routes still held to desired, unless a
// route of our own now has the same key (destination, metric).
func (c *Controller) withAdopted(desired []kernel.Route) []kernel.Route {
	if len(c.adopt.routes) == 0 {
		return desired
	}
	type key struct {
		dst    netip.Prefix
		metric int
	}
	have := make(map[key]bool, len(desired))
	for _, r := range desired {
		have[key{r.Dst.Masked(), r.Metric}] = true
	}
	for _, ar := range c.adopt.routes {
		if k := (key{ar.r.Dst.Masked(), ar.r.Metric}); !have[k] {
			have[k] = true
			desired = append(desired, ar.r)
		}
	}
	return desired
}

// expireAdoption runs when the adoption timer fires: what was not re-learnt
// by its deadline is removed. Neighbor entries the engine programmed in
// the meantime are the engine's and stay.
func (c *Controller) expireAdoption() {
	a := &c.adopt
	a.timer = nil
	now := time.Now()
	if !now.Before(a.graceEnd) {
		for key, ar := range a.routes {
			c.log.Info("removing adopted route not re-learnt", zap.Stringer("route", ar.r), zap.Duration("grace", adoptGrace))
			delete(a.routes, key)
			c.dirty.routes = true
		}
		c.dropAdoptedNeighbors(a.dynamic)
	}
	if !now.Before(a.permEnd) {
		c.dropAdoptedNeighbors(a.permanent)
	}
	c.armAdoption(now)
}

func (c *Controller) dropAdoptedNeighbors(m map[netip.Addr]netip.Addr) {
	for addr, nbma := range m {
		delete(m, addr)
		c.dirty.bind = true
		if ce, ok := c.eng.Entry(addr); ok && ce.Bound.IsValid() {
			continue
		}
		c.log.Info("removing adopted neighbor not re-learnt", zap.Stringer("proto", addr), zap.Stringer("nbma", nbma))
		if err := c.deps.Dataplane.DeleteNeighbor(addr); err != nil {
			c.stats.inc("kernel_neighbor_errors")
			c.log.Warn("removing adopted neighbor", zap.Stringer("proto", addr), zap.Error(err))
		}
	}
}

// onNeighborMiss handles a kernel neighbor miss. An entry the engine has
// bound is written again (the kernel asks because a REACHABLE entry aged
// while still in use, or the entry was lost): without an answer within a
// second the kernel would mark it FAILED and drop traffic. The engine is
// told as well (the peer is in use). An adopted entry the engine does not
// know yet is kept alive the same way, without bothering the engine, which
// would otherwise resolve the address (or, before registration, cache it
// as unresolvable) although the adoption's own resolution is on its way.
func (c *Controller) onNeighborMiss(m kernel.Miss) {
	if ce, ok := c.eng.Entry(m.Addr); ok && ce.Bound.IsValid() {
		delete(c.adopt.dynamic, m.Addr)
		delete(c.adopt.permanent, m.Addr)
		permanent := ce.Kind.Permanent()
		c.refreshNeighbor(m.Addr, ce.Bound, permanent)
		c.eng.NeighborMiss(m.Addr)
		return
	}
	if nbma, ok := c.adopt.dynamic[m.Addr]; ok {
		c.stats.inc("adopted_neighbor_refreshes")
		c.refreshNeighbor(m.Addr, nbma, false)
		return
	}
	c.eng.NeighborMiss(m.Addr)
}

func (c *Controller) refreshNeighbor(addr, nbma netip.Addr, permanent bool) {
	c.stats.inc("kernel_neighbor_refreshes")
	if err := c.deps.Dataplane.ReplaceNeighbor(addr, nbma, permanent); err != nil {
		c.stats.inc("kernel_neighbor_errors")
		c.log.Warn("refreshing neighbor", zap.Stringer("proto", addr), zap.Stringer("nbma", nbma), zap.Error(err))
	}
}
