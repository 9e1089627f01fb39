package routing

import (
	"fmt"
	"net/netip"
	"slices"
)

// Route is one kernel route derived from a BGP best path.
//
// Every route goes through the tunnel device: the kernel adapter installs it
// as "Prefix via Via dev <tunnel> onlink proto <dmvpnd>". When Via is another
// spoke's tunnel address (Phase 2 reflection keeps the next hop), the kernel
// has no neighbor entry for it yet; the miss is reported to dmvpnd, which
// resolves it with NHRP and then programs the neighbor.
//
// Precedence over NHRP shortcuts: shortcut routes are installed by the NHRP
// side, usually for the exact remote LAN prefix, which is more specific than a
// Phase 3 summary and wins by longest-prefix match. For an equal prefix length
// the lower metric wins: BGP routes use FIBConfig.Metric (DefaultRouteMetric,
// 20), so shortcuts must use a lower one (FRR uses distance 10 for them).
type Route struct {
	Prefix netip.Prefix
	Via    netip.Addr
	// Metric is the kernel route priority; lower wins.
	Metric int
}

func (r Route) String() string {
	return fmt.Sprintf("%s via %s metric %d", r.Prefix, r.Via, r.Metric)
}

// RouteSink receives the complete desired set of BGP routes whenever it
// changes, from the speaker's watch goroutine. SetRoutes must not block and
// must not call back into the speaker: the controller stores the set and
// wakes its loop, which applies it to the kernel (and retries what the kernel
// refuses). routingtest.Sink is a fake.
type RouteSink interface {
	SetRoutes(routes []Route)
}

// SortRoutes orders routes by prefix and next hop, the order in which the
// FIB hands them to a sink.
func SortRoutes(rs []Route) {
	slices.SortFunc(rs, func(a, b Route) int {
		if c := comparePrefix(a.Prefix, b.Prefix); c != 0 {
			return c
		}
		return a.Via.Compare(b.Via)
	})
}

// PathUpdate is one best-path change: the new best next hop of Prefix, or its
// withdrawal (no best path left).
type PathUpdate struct {
	Prefix   netip.Prefix
	NextHop  netip.Addr
	Withdraw bool
	// From is the neighbor the path was learned from; zero for local paths.
	From netip.Addr
}
