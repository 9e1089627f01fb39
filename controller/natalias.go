package controller

import (
	"cmp"
	"maps"
	"net/netip"
	"slices"

	"go.uber.org/zap"

	"github.com/dmvpnd/dmvpnd/ipsec"
	"github.com/dmvpnd/dmvpnd/kernel"
	"github.com/dmvpnd/dmvpnd/nhrp/engine"
)

// NATSteer steers GRE into the marked NAT tunnel-mode SAs
// (kernel.NATSteering).
type NATSteer interface {
	Set(local netip.Addr, want []kernel.NATSteer) error
	Remove() error
}

// natPeer is one peer behind NAT as its SAs show it: the inner (private)
// address and the post-NAT address.
type natPeer struct{ inner, outer netip.Addr }

// natAliases gives every peer behind NAT whose SA carries marks its GRE
// address (docs/strongswan.md, "Two spokes behind different NATs with the
// same private address"): the first peer with an inner address keeps that
// address, a later one with the same inner address and another post-NAT
// address gets an alias from ipsec.nat_alias_prefix. An assignment lasts
// as long as the peer has an SA; an alias is handed out again only once
// no engine binding uses it (a registration that outlived its SA must not
// lead to another peer). Loop only.
type natAliases struct {
	gre map[natPeer]netip.Addr
}

// assign maps marked NAT protections to their GRE addresses and returns
// what the engine (engineProtections, with bind) and the kernel need, and
// the inner addresses of peers left without an alias (the prefix is full:
// their SAs prove nothing). held lists the NBMA addresses the engine's
// bindings use. Unmarked protections pass unchanged.
func (a *natAliases) assign(ps []ipsec.Protection, prefix netip.Prefix, held map[netip.Addr]bool, bind bool) ([]engine.Protection, []kernel.NATSteer, []netip.Addr) {
	if a.gre == nil {
		a.gre = map[natPeer]netip.Addr{}
	}
	marked := func(p ipsec.Protection) bool { return p.Outer.IsValid() && p.MarkOut != 0 }
	cur := map[natPeer]bool{}
	for _, p := range ps {
		if marked(p) {
			cur[natPeer{p.NBMA, p.Outer}] = true
		}
	}
	for np, g := range a.gre {
		if !cur[np] && (g == np.inner || !held[g]) {
			delete(a.gre, np)
		}
	}
	used := map[netip.Addr]bool{}
	innerTaken := map[netip.Addr]bool{}
	for np, g := range a.gre {
		used[g] = true
		if g == np.inner && cur[np] {
			innerTaken[np.inner] = true
		}
	}
	var exhausted []netip.Addr
	for _, np := range slices.SortedFunc(maps.Keys(cur), func(x, y natPeer) int {
		return cmp.Or(x.inner.Compare(y.inner), x.outer.Compare(y.outer))
	}) {
		if _, ok := a.gre[np]; ok {
			continue
		}
		if !innerTaken[np.inner] {
			a.gre[np], innerTaken[np.inner] = np.inner, true
			continue
		}
		alias, ok := freeAlias(prefix, used)
		if !ok {
			exhausted = append(exhausted, np.inner)
			continue
		}
		a.gre[np], used[alias] = alias, true
	}
	eps := make([]engine.Protection, 0, len(ps))
	var steer []kernel.NATSteer
	for _, p := range ps {
		if !marked(p) {
			eps = append(eps, engineProtections([]ipsec.Protection{p}, bind)...)
			continue
		}
		g, ok := a.gre[natPeer{p.NBMA, p.Outer}]
		if !ok {
			continue // no alias left: proves nothing
		}
		ep := engineProtections([]ipsec.Protection{p}, bind)[0]
		if g != p.NBMA {
			ep.NBMA, ep.Inner = g, p.NBMA
		}
		eps = append(eps, ep)
		steer = append(steer, kernel.NATSteer{GRE: g, Inner: p.NBMA, Outer: p.Outer, MarkIn: p.MarkIn, MarkOut: p.MarkOut, ReqID: p.ReqID})
	}
	// The newest CHILD_SA of a peer first (the kernel keeps the first
	// outbound entry per GRE address).
	slices.SortStableFunc(steer, func(x, y kernel.NATSteer) int {
		return cmp.Or(x.GRE.Compare(y.GRE), cmp.Compare(y.ReqID, x.ReqID))
	})
	return eps, steer, exhausted
}

// freeAlias is the lowest address of prefix (past its network address)
// that used does not hold.
func freeAlias(prefix netip.Prefix, used map[netip.Addr]bool) (netip.Addr, bool) {
	if !prefix.IsValid() {
		return netip.Addr{}, false
	}
	for a := prefix.Masked().Addr().Next(); prefix.Contains(a); a = a.Next() {
		if !used[a] {
			return a, true
		}
	}
	return netip.Addr{}, false
}

// heldNBMAs lists the NBMA addresses of the engine's bindings.
func (c *Controller) heldNBMAs() map[netip.Addr]bool {
	held := map[netip.Addr]bool{}
	for _, e := range c.eng.Cache() {
		if e.NBMA.IsValid() {
			held[e.NBMA] = true
		}
	}
	return held
}

// reconcileNATSteer pushes the steering when it changed, once charon's SAs
// have been listed (a restarted dmvpnd keeps the previous run's steering
// until then); a failure keeps it dirty for the loop's backoff retry.
func (c *Controller) reconcileNATSteer() {
	if !c.dirty.steer {
		return
	}
	if c.deps.NATSteer == nil || c.deps.IPsec == nil || !c.natSteerKnown {
		c.dirty.steer = false
		return
	}
	if err := c.deps.NATSteer.Set(c.nbma, c.natSteer); err != nil {
		c.stats.inc("reconcile_errors_nat_steer")
		c.countReconcileError("kernel")
		c.log.Warn("steering GRE into NAT SAs", zap.Error(err))
		return
	}
	c.dirty.steer = false
}
