package kernel

import (
	"net"
	"net/netip"

	"golang.org/x/sys/unix"
)

// RouteMatch is the route of the main table (or the configured one) that
// covers a destination, as the NHRP engine needs it: the matched prefix
// (its length is what an egress node answers in a resolution reply), the
// outgoing interface and the gateway.
type RouteMatch struct {
	Prefix  netip.Prefix
	Ifindex int
	Gateway netip.Addr
}

// LookupRoute finds the longest unicast IPv4 prefix covering dst in the
// main table and in our own table. The kernel's RTM_GETROUTE answers with a
// host route, not the prefix that matched, so the match is made here over
// the listed routes (kept between lookups while no route changes:
// routewatch.go). ok is false when no route covers dst.
func (k *Kernel) LookupRoute(dst netip.Addr) (RouteMatch, bool, error) {
	routes, err := k.lookupRoutes()
	if err != nil {
		return RouteMatch{}, false, err
	}
	var best RouteMatch
	found := false
	for _, m := range routes {
		if !m.Prefix.Contains(dst) || (found && m.Prefix.Bits() <= best.Prefix.Bits()) {
			continue
		}
		best, found = m, true
	}
	return best, found, nil
}

// netipAddr converts a netlink address (nil: invalid).
func netipAddr(ip net.IP) (netip.Addr, bool) {
	a, ok := netip.AddrFromSlice(ip)
	return a.Unmap(), ok
}

func (k *Kernel) lookupTables() []int {
	if k.cfg.RouteTable == unix.RT_TABLE_MAIN {
		return []int{unix.RT_TABLE_MAIN}
	}
	return []int{unix.RT_TABLE_MAIN, k.cfg.RouteTable}
}

// routePrefix converts a netlink destination; nil is the default route.
func routePrefix(dst *net.IPNet) netip.Prefix {
	if dst == nil {
		return netip.PrefixFrom(netip.IPv4Unspecified(), 0)
	}
	a, ok := netip.AddrFromSlice(dst.IP)
	if !ok {
		return netip.Prefix{}
	}
	ones, _ := dst.Mask.Size()
	return netip.PrefixFrom(a.Unmap(), ones).Masked()
}
