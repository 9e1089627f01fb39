package kernel

import (
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// hostRouteTable is the table of the tunnel prefix route (HostAddress):
// the main table, where the kernel puts the connected route it replaces.
const hostRouteTable = unix.RT_TABLE_MAIN

// desiredHostRoute is the tunnel prefix route of cfg (HostAddress) on the
// tunnel ifindex, shaped like a connected route: scope link, the tunnel
// address as preferred source, metric 0; marked with our protocol.
func (k *Kernel) desiredHostRoute(cfg TunnelConfig, ifindex int) *netlink.Route {
	return &netlink.Route{
		LinkIndex: ifindex,
		Dst:       ipNet(cfg.HostRoute()),
		Src:       cfg.Address.Addr().AsSlice(),
		Protocol:  netlink.RouteProtocol(k.cfg.RouteProtocol),
		Table:     hostRouteTable,
		Scope:     netlink.SCOPE_LINK,
		Type:      unix.RTN_UNICAST,
		Family:    unix.AF_INET,
	}
}

// isHostRoute reports whether r is, by its key, a tunnel prefix route of
// ours to dst on the tunnel ifindex: our protocol, the main table, no
// gateway, metric 0 (attributes such as the source may differ).
func (k *Kernel) isHostRoute(r netlink.Route, dst netip.Prefix, ifindex int) bool {
	p, ok := prefixFromIPNet(r.Dst)
	return ok && p == dst && int(r.Protocol) == k.cfg.RouteProtocol && r.Table == hostRouteTable &&
		r.LinkIndex == ifindex && r.Gw == nil && r.Priority == 0
}

// listPrefixRoutes lists the main table's IPv4 routes to exactly dst.
func (k *Kernel) listPrefixRoutes(dst netip.Prefix) ([]netlink.Route, error) {
	filter := &netlink.Route{Table: hostRouteTable, Dst: ipNet(dst)}
	rs, err := k.nl.RouteListFiltered(unix.AF_INET, filter, netlink.RT_FILTER_TABLE|netlink.RT_FILTER_DST)
	if err != nil {
		return nil, opErr("list routes", dst.String()+" table main", err)
	}
	return rs, nil
}

// ensureHostRoute installs the tunnel prefix route of cfg unless it is
// there already (a restart changes nothing). It is appended beside any
// route with the same key (the kernel's connected route of a prefix
// address about to go, an operator's route), never replacing one; an own
// route with other attributes goes once the new one is in.
func (k *Kernel) ensureHostRoute(ifindex int, cfg TunnelConfig) error {
	want := k.desiredHostRoute(cfg, ifindex)
	rs, err := k.listPrefixRoutes(cfg.HostRoute())
	if err != nil {
		return err
	}
	if !slices.ContainsFunc(rs, func(r netlink.Route) bool {
		return k.isHostRoute(r, cfg.HostRoute(), ifindex) && sameHostRoute(r, *want)
	}) {
		if err := k.nl.RouteAppend(want); err != nil {
			return opErr("add route", cfg.HostRoute().String()+" dev "+cfg.Name, err)
		}
		k.log.Info("kernel: routed the tunnel prefix through the tunnel (host address)",
			zap.String("dev", cfg.Name), zap.Stringer("prefix", cfg.HostRoute()))
	}
	return k.deleteHostRoutes(rs, ifindex, cfg, want)
}

// removeHostRoutes deletes our tunnel prefix routes on the tunnel ifindex
// (a run with HostAddress left them).
func (k *Kernel) removeHostRoutes(ifindex int, cfg TunnelConfig) error {
	if cfg.Address.Bits() == 32 {
		return nil // no tunnel prefix, no route of this kind
	}
	rs, err := k.listPrefixRoutes(cfg.Address.Masked())
	if err != nil {
		return err
	}
	return k.deleteHostRoutes(rs, ifindex, cfg, nil)
}

// deleteHostRoutes deletes those of rs that are our tunnel prefix routes
// on the tunnel ifindex, except one like keep. Routes of other protocols,
// tables or devices are never touched.
func (k *Kernel) deleteHostRoutes(rs []netlink.Route, ifindex int, cfg TunnelConfig, keep *netlink.Route) error {
	dst := cfg.Address.Masked()
	for _, r := range rs {
		if !k.isHostRoute(r, dst, ifindex) || (keep != nil && sameHostRoute(r, *keep)) {
			continue
		}
		if err := k.nl.RouteDel(&r); err != nil && !isNotExist(err) {
			return opErr("delete route", dst.String()+" dev "+cfg.Name, err)
		}
	}
	return nil
}

// sameHostRoute compares the attributes of two tunnel prefix routes with
// the same key.
func sameHostRoute(a, b netlink.Route) bool {
	return a.Scope == b.Scope && a.Src.Equal(b.Src) && a.Type == b.Type
}
