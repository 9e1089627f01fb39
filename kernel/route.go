package kernel

import (
	"fmt"
	"net"
	"net/netip"
	"sort"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

func (r Route) String() string {
	s := r.Dst.String()
	if r.Via.IsValid() {
		s += " via " + r.Via.String()
	}
	if r.Metric != 0 {
		s += fmt.Sprintf(" metric %d", r.Metric)
	}
	return s
}

func validateRoute(r Route) error {
	if !r.Dst.IsValid() || !r.Dst.Addr().Is4() {
		return fmt.Errorf("destination %q is not an IPv4 prefix", r.Dst)
	}
	if r.Via.IsValid() && !r.Via.Is4() {
		return fmt.Errorf("next hop %s is not IPv4", r.Via)
	}
	if r.Metric < 0 {
		return fmt.Errorf("negative metric %d", r.Metric)
	}
	return nil
}

// toNetlinkRoute builds the kernel route. A next hop is marked onlink: the
// tunnel carries a /32, so no connected route covers the peer's address.
func (k *Kernel) toNetlinkRoute(r Route, ifindex int) *netlink.Route {
	dst := r.Dst.Masked()
	nr := &netlink.Route{
		LinkIndex: ifindex,
		Dst:       &net.IPNet{IP: dst.Addr().AsSlice(), Mask: net.CIDRMask(dst.Bits(), 32)},
		Protocol:  netlink.RouteProtocol(k.cfg.RouteProtocol),
		Table:     k.cfg.RouteTable,
		Priority:  r.Metric,
		Type:      unix.RTN_UNICAST,
		Family:    unix.AF_INET,
	}
	if r.Via.IsValid() {
		nr.Gw = net.IP(r.Via.AsSlice())
		nr.Flags = int(netlink.FLAG_ONLINK)
		nr.Scope = netlink.SCOPE_UNIVERSE
	} else {
		nr.Scope = netlink.SCOPE_LINK
	}
	return nr
}

// ownedRoute is one of our routes as read from the kernel.
type ownedRoute struct {
	Route
	ifindex int
	nl      netlink.Route
}

func (k *Kernel) listOwned() ([]ownedRoute, error) {
	filter := &netlink.Route{Table: k.cfg.RouteTable, Protocol: netlink.RouteProtocol(k.cfg.RouteProtocol)}
	rs, err := k.nl.RouteListFiltered(unix.AF_INET, filter, netlink.RT_FILTER_TABLE|netlink.RT_FILTER_PROTOCOL)
	if err != nil {
		return nil, opErr("list routes", fmt.Sprintf("proto %d table %d", k.cfg.RouteProtocol, k.cfg.RouteTable), err)
	}
	k.mu.Lock()
	t := k.tunnel
	k.mu.Unlock()
	out := make([]ownedRoute, 0, len(rs))
	for _, nr := range rs {
		if int(nr.Protocol) != k.cfg.RouteProtocol || nr.Table != k.cfg.RouteTable {
			continue // defensive: filtering is done by the library in userspace on old kernels
		}
		if t.hostRoute.IsValid() && k.isHostRoute(nr, t.hostRoute, t.ifindex) {
			continue // the tunnel's (EnsureTunnel, HostAddress)
		}
		p, ok := prefixFromIPNet(nr.Dst)
		if !ok {
			p = netip.PrefixFrom(netip.IPv4Unspecified(), 0)
		}
		out = append(out, ownedRoute{
			Route:   Route{Dst: p, Via: addrFromIP(nr.Gw), Metric: nr.Priority},
			ifindex: nr.LinkIndex,
			nl:      nr,
		})
	}
	return out, nil
}

// ListRoutes implements Dataplane: the routes carrying our protocol number in
// our table, sorted by destination and metric, except the tunnel prefix
// route of a host address (TunnelConfig.HostAddress), which is the
// tunnel's.
func (k *Kernel) ListRoutes() ([]Route, error) {
	owned, err := k.listOwned()
	if err != nil {
		return nil, err
	}
	out := make([]Route, 0, len(owned))
	for _, o := range owned {
		out = append(out, o.Route)
	}
	sortRoutes(out)
	return out, nil
}

func sortRoutes(rs []Route) {
	sort.Slice(rs, func(i, j int) bool {
		a, b := rs[i], rs[j]
		if c := a.Dst.Addr().Compare(b.Dst.Addr()); c != 0 {
			return c < 0
		}
		if a.Dst.Bits() != b.Dst.Bits() {
			return a.Dst.Bits() < b.Dst.Bits()
		}
		return a.Metric < b.Metric
	})
}

// SetRoutes implements Dataplane. Routes already present with the same next
// hop on the tunnel are left untouched (no netlink traffic), so a restart that
// asks for the same state changes nothing.
//
// One bad route does not block the others: an invalid route, a duplicate
// that conflicts with an earlier one, or a route the kernel refuses (a next
// hop it rejects, say) is skipped and reported in a *RouteErrors, and
// everything else is installed and pruned. With a host address
// (TunnelConfig.HostAddress) the tunnel prefix route is the tunnel's:
// SetRoutes neither prunes it nor replaces it (a desired route to the
// tunnel prefix with metric 0 is refused). Other errors (no tunnel, listing
// failed) mean nothing was changed.
func (k *Kernel) SetRoutes(desired []Route) error {
	// A write is seen by the next lookup at once; a push that writes
	// nothing (every resync's) keeps the routes the lookups use, so the
	// next hairpin's lookup does not dump them (25-45 ms under TCG).
	wrote := false
	defer func() {
		if wrote {
			k.routeWatch.changed()
		}
	}()
	t, err := k.currentTunnel()
	if err != nil {
		return err
	}
	want, failed := desiredRoutes(desired)
	if t.hostRoute.IsValid() {
		if r, ok := want[routeKey{dst: t.hostRoute}]; ok {
			delete(want, routeKey{dst: t.hostRoute})
			failed = append(failed, RouteError{Op: "replace route", Route: r, Err: ErrTunnelPrefixRoute})
		}
	}
	owned, err := k.listOwned()
	if err != nil {
		return err
	}
	have := make(map[routeKey]ownedRoute, len(owned))
	for _, o := range owned {
		have[o.key()] = o
	}
	// Replace first, then prune, so traffic never loses a covering route.
	for _, key := range sortedKeys(want) {
		r := want[key]
		if o, ok := have[key]; ok && o.ifindex == t.ifindex && o.Via == r.Via {
			continue
		}
		wrote = true
		if err := k.nl.RouteReplace(k.toNetlinkRoute(r, t.ifindex)); err != nil {
			failed = append(failed, RouteError{Op: "replace route", Route: r, Err: err})
		}
	}
	for _, o := range owned {
		if _, ok := want[o.key()]; ok {
			continue
		}
		nr := o.nl
		wrote = true
		if err := k.nl.RouteDel(&nr); err != nil && !isNotExist(err) {
			failed = append(failed, RouteError{Op: "delete route", Route: o.Route, Err: err})
		}
	}
	return routeErrors(failed)
}

// desiredRoutes keys the desired routes, skipping (and reporting) invalid
// ones and later duplicates that conflict with an earlier route.
func desiredRoutes(desired []Route) (map[routeKey]Route, []RouteError) {
	want := make(map[routeKey]Route, len(desired))
	var failed []RouteError
	for _, r := range desired {
		if err := validateRoute(r); err != nil {
			failed = append(failed, RouteError{Op: "replace route", Route: r, Err: err})
			continue
		}
		r.Dst = r.Dst.Masked()
		if prev, dup := want[r.key()]; dup {
			if prev != r {
				failed = append(failed, RouteError{Op: "replace route", Route: r, Err: fmt.Errorf("conflicts with %s", prev)})
			}
			continue
		}
		want[r.key()] = r
	}
	return want, failed
}

func sortedKeys(m map[routeKey]Route) []routeKey {
	keys := make([]routeKey, 0, len(m))
	for key := range m {
		keys = append(keys, key)
	}
	sort.Slice(keys, func(i, j int) bool {
		if c := keys[i].dst.Addr().Compare(keys[j].dst.Addr()); c != 0 {
			return c < 0
		}
		if keys[i].dst.Bits() != keys[j].dst.Bits() {
			return keys[i].dst.Bits() < keys[j].dst.Bits()
		}
		return keys[i].metric < keys[j].metric
	})
	return keys
}
