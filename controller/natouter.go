package controller

import (
	"net/netip"
	"strings"

	"github.com/dmvpnd/dmvpnd/ipsec"
	"github.com/dmvpnd/dmvpnd/nhrp/engine"
)

// natOuters maps the claimed NBMA address of each peer behind NAT with an
// established tunnel-mode SA (the GRE source of its packets) to the SA's
// remote, post-NAT address.
func natOuters(st ipsec.State) map[netip.Addr]netip.Addr {
	out := map[netip.Addr]netip.Addr{}
	for _, p := range st.Peers {
		if p.Status == ipsec.StatusUp && p.NATRemote && p.ClaimedNBMA.IsValid() && p.Observed.IsValid() {
			out[p.ClaimedNBMA] = p.Observed.Addr()
		}
	}
	for _, sa := range st.Unattributed {
		if !sa.NATRemote || sa.Terminating || !strings.EqualFold(sa.State, "ESTABLISHED") {
			continue
		}
		for _, ch := range sa.Children {
			for _, ts := range ch.RemoteTS {
				if a, ok := hostSelector(ts); ok && a != sa.Remote.Addr() {
					out[a] = sa.Remote.Addr()
				}
			}
		}
	}
	return out
}

// hostSelector parses a host traffic selector such as "172.16.0.2/32[gre]".
func hostSelector(ts string) (netip.Addr, bool) {
	if i := strings.IndexByte(ts, '['); i >= 0 {
		ts = ts[:i]
	}
	p, err := netip.ParsePrefix(ts)
	if err != nil || !p.IsSingleIP() {
		return netip.Addr{}, false
	}
	return p.Addr(), true
}

// packetMeta describes an NHRP packet from the GRE source from: whether an
// SA protects it and, for a peer behind NAT (tunnel mode: the GRE source is
// its claimed address), the post-NAT address its SA comes from, so that the
// engine reports the peer as NATed and tells it its public address.
func (c *Controller) packetMeta(from netip.Addr) engine.PacketMeta {
	trusted := c.isTrusted(from)
	return engine.PacketMeta{Trusted: trusted, Outer: c.natOuter[from]}
}
