package kernel

import (
	"net"
	"net/netip"
	"strconv"

	"github.com/vishvananda/netlink"
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
// the listed routes. ok is false when no route covers dst.
func (k *Kernel) LookupRoute(dst netip.Addr) (RouteMatch, bool, error) {
	var best RouteMatch
	found := false
	for _, table := range k.lookupTables() {
		filter := &netlink.Route{Table: table}
		routes, err := k.nl.RouteListFiltered(unix.AF_INET, filter, netlink.RT_FILTER_TABLE)
		if err != nil {
			return RouteMatch{}, false, opErr("list routes", "table "+strconv.Itoa(table), err)
		}
		for _, r := range routes {
			if r.Type != unix.RTN_UNICAST {
				continue
			}
			p := routePrefix(r.Dst)
			if !p.Contains(dst) || (found && p.Bits() <= best.Prefix.Bits()) {
				continue
			}
			m := RouteMatch{Prefix: p, Ifindex: r.LinkIndex}
			if gw, ok := netip.AddrFromSlice(r.Gw); ok {
				m.Gateway = gw.Unmap()
			}
			best, found = m, true
		}
	}
	return best, found, nil
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
