package config

import (
	"fmt"
	"net/netip"
)

var multicastSpace = netip.MustParsePrefix("224.0.0.0/4")

func (c *Config) validateMulticast(v *validator) {
	m := c.NHRP.Multicast
	if m.Dynamic && c.NHRP.Role == RoleSpoke {
		v.add("nhrp.multicast.dynamic", "only a hub has registered spokes to copy multicast to (role is spoke)")
	}
	if m.NHS && len(c.NHRP.NHS) == 0 {
		v.add("nhrp.multicast.nhs", "no NHS is configured (nhrp.nhs)")
	}
	seen := map[netip.Addr]int{}
	for i, a := range m.Static {
		p := fmt.Sprintf("nhrp.multicast.static[%d]", i)
		checkNBMA(v, p, a)
		if j, dup := seen[a]; dup {
			v.add(p, "%s is already nhrp.multicast.static[%d]", a, j)
		}
		seen[a] = i
		if a == c.Tunnel.LocalNBMA {
			v.add(p, "%s is this node's own NBMA address", a)
		}
	}
	for i, g := range m.Groups {
		if !g.Addr().Is4() || g.Bits() < multicastSpace.Bits() || !multicastSpace.Contains(g.Addr()) {
			v.add(fmt.Sprintf("nhrp.multicast.groups[%d]", i), "%s is not an IPv4 multicast prefix (inside 224.0.0.0/4)", g)
		}
	}
	if len(m.Groups) > 0 && !m.Enabled() {
		v.add("nhrp.multicast.groups", "no peer receives multicast: set nhrp.multicast.dynamic, nhs or static")
	}
	if !(m.Rate > 0) {
		v.add("nhrp.multicast.rate", "%v must be greater than 0", m.Rate)
	}
	if m.Burst < 1 {
		v.add("nhrp.multicast.burst", "%d must be at least 1", m.Burst)
	}
}
