package controller

import (
	"net/netip"

	"github.com/dmvpnd/dmvpnd/nhrp/engine"
)

// packetMeta describes an NHRP packet from the GRE source from: whether an
// SA protects it and, for a peer behind NAT (tunnel mode: the GRE source is
// its claimed address), the post-NAT address its SA comes from, so that the
// engine reports the peer as NATed and tells it its public address.
func (c *Controller) packetMeta(from netip.Addr) engine.PacketMeta {
	trusted := c.isTrusted(from)
	return engine.PacketMeta{Trusted: trusted, Outer: c.natOuter[from]}
}
