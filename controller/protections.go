package controller

import (
	"net/netip"
	"slices"

	"go.uber.org/zap"

	"github.com/dmvpnd/dmvpnd/ipsec"
	"github.com/dmvpnd/dmvpnd/nhrp/engine"
)

// syncProtections hands the engine what the established SAs prove (the
// engine alone decides what that lets in and out). It runs for every IPsec
// event and before every received NHRP packet: an SA that a peer initiated
// to the responder connection raises no event, and its first registration
// travels over that very SA. The snapshot is copied and converted only
// when its generation changed, so a flood of cleartext NHRP costs a
// comparison per packet.
func (c *Controller) syncProtections() {
	if c.deps.IPsec == nil || c.eng == nil {
		return
	}
	g, numbered := c.deps.IPsec.(snapshotGeneration)
	if numbered && c.protGenKnown && g.Generation() == c.protGen {
		return
	}
	st := c.deps.IPsec.State()
	// st's events, queued before st could be read, are reported before
	// anything acts on it.
	c.reportQueuedIPsecEvents()
	c.protGen, c.protGenKnown = st.Generation, numbered
	cfg := c.config()
	eps, steer, exhausted := c.nat.assign(st.Protections(), cfg.IPsec.NATAliasPrefix, c.heldNBMAs(), cfg.IPsec.Auth.BindTunnelAddress)
	for _, inner := range exhausted {
		c.stats.inc("ipsec_nat_alias_exhausted")
		c.log.Warn("no NAT alias left: the SA proves nothing", zap.Stringer("inner", inner),
			zap.Stringer("nat_alias_prefix", cfg.IPsec.NATAliasPrefix))
	}
	c.eng.SetProtections(eps)
	// Until charon has been listed the SAs are unknown, not gone: the
	// steering a previous run (or connection) left stays.
	if st.Connected && (!c.natSteerKnown || !slices.Equal(steer, c.natSteer)) {
		c.natSteer, c.natSteerKnown, c.dirty.steer = steer, true, true
	}
	c.mcast.dirty = true // what is proven decides who gets multicast copies
}

// snapshotGeneration is implemented by an IPsec side whose State carries a
// Generation that changes with every new snapshot.
type snapshotGeneration interface{ Generation() uint64 }

// snapshotNotifier is implemented by an IPsec side that signals each new
// snapshot (ipsec.Manager.Changed), including changes no event reports.
type snapshotNotifier interface{ Changed() <-chan struct{} }

// engineProtections converts what the SAs prove for the engine. With
// bind (ipsec.auth.bind_tunnel_address) every identity is bound to the
// tunnel address it is (its certificate carries it as an IP SAN, which
// charon checked); an identity that is not an address is bound to none.
func engineProtections(ps []ipsec.Protection, bind bool) []engine.Protection {
	out := make([]engine.Protection, len(ps))
	for i, p := range ps {
		out[i] = engine.Protection{NBMA: p.NBMA, Outer: p.Outer, Identity: p.Identity}
		if bind {
			out[i].Bound = []netip.Addr{}
			if a, err := netip.ParseAddr(p.Identity); err == nil {
				out[i].Bound = append(out[i].Bound, a)
			}
		}
	}
	return out
}
