package routing

import (
	"maps"
	"net/netip"
	"slices"
	"sync"

	"go.uber.org/zap"
)

// FIB turns BGP best-path changes into the desired set of kernel routes and
// hands every new set to a RouteSink, synchronously. It decides only: the
// sink's owner (the controller) applies the set to the kernel, merged with
// its other routes, and retries refused routes with backoff. There is one
// route reconciler, and it is not here.
//
// A best path becomes a route unless the guard rejects it (counted per
// reason), its prefix is one the node originates, its next hop is one of the
// node's own addresses, or its neighbor is over the max-prefix limit with
// action "drop".
type FIB struct {
	sink   RouteSink
	metric int
	log    *zap.Logger

	mu         sync.Mutex
	best       map[netip.Prefix]bestPath
	guard      guard
	hubs       map[netip.Addr]bool // neighbors whose default route may be accepted
	ownAddrs   map[netip.Addr]bool
	originated map[netip.Prefix]bool
	maxPerNbr  int // > 0: "drop" action of the max-prefix limit
	rejected   map[string]uint64
	lastSent   []Route
	sent       bool
}

type bestPath struct {
	nextHop netip.Addr
	from    netip.Addr // neighbor; zero for local paths
}

// newFIB returns a FIB that pushes to sink.
func newFIB(sink RouteSink, metric int, g guard, log *zap.Logger) *FIB {
	return &FIB{
		sink:     sink,
		metric:   metric,
		log:      log.Named("fib"),
		best:     make(map[netip.Prefix]bestPath),
		guard:    g,
		hubs:     make(map[netip.Addr]bool),
		ownAddrs: make(map[netip.Addr]bool),
		rejected: make(map[string]uint64),
	}
}

// setOwn replaces the node's originated prefixes and addresses, which are
// never installed as routes, and its LAN prefixes, whose more-specifics are
// rejected.
func (f *FIB) setOwn(originated, lan []netip.Prefix, addrs []netip.Addr) {
	f.update(func() {
		f.guard.own = slices.Clone(lan)
		f.originated = make(map[netip.Prefix]bool, len(originated))
		for _, p := range originated {
			f.originated[p.Masked()] = true
		}
		f.ownAddrs = make(map[netip.Addr]bool, len(addrs))
		for _, a := range addrs {
			f.ownAddrs[a.Unmap()] = true
		}
	})
}

// setPolicy replaces what a reload changes: whether a hub's default route
// is accepted, which neighbors are hubs, and the "drop" limit (0: none).
func (f *FIB) setPolicy(acceptDefault bool, hubs []netip.Addr, maxPerNbr int) {
	f.update(func() { f.setPolicyLocked(acceptDefault, hubs, maxPerNbr) })
}

func (f *FIB) setPolicyLocked(acceptDefault bool, hubs []netip.Addr, maxPerNbr int) {
	f.guard.acceptDefault = acceptDefault
	f.hubs = make(map[netip.Addr]bool, len(hubs))
	for _, a := range hubs {
		f.hubs[a] = true
	}
	f.maxPerNbr = maxPerNbr
}

// setProtected replaces the prefixes no route may overlap.
func (f *FIB) setProtected(ps []netip.Prefix) {
	f.update(func() { f.guard.protected = slices.Clone(ps) })
}

// apply records best-path changes in order (a later update of the same
// prefix wins) and pushes the new set. An empty batch pushes too, so that
// the initial (possibly empty) table dump prunes stale routes.
func (f *FIB) apply(updates []PathUpdate) {
	f.update(func() {
		for _, u := range updates {
			p := u.Prefix.Masked()
			if u.Withdraw {
				delete(f.best, p)
				continue
			}
			f.best[p] = bestPath{nextHop: u.NextHop.Unmap(), from: u.From}
		}
	}, updates...)
}

// forget drops all recorded best paths without pushing; the speaker calls
// it before a new watch replays the table.
func (f *FIB) forget() {
	f.mu.Lock()
	clear(f.best)
	f.mu.Unlock()
}

// update changes the state under the lock, then pushes the desired set if
// it changed (or was never pushed). Rejections are counted for the paths in
// counted, so that a path is counted once per announcement, not per push.
func (f *FIB) update(change func(), counted ...PathUpdate) {
	f.mu.Lock()
	change()
	for _, u := range counted {
		if u.Withdraw || f.localLocked(u.Prefix.Masked(), u.NextHop.Unmap()) {
			continue
		}
		if why := f.guard.reason(u.Prefix.Masked(), u.NextHop.Unmap(), u.From, f.hubs[u.From]); why != "" {
			f.rejected[why]++
			f.log.Info("rejecting best path", zap.Stringer("prefix", u.Prefix), zap.Stringer("next_hop", u.NextHop),
				zap.Stringer("neighbor", u.From), zap.String("reason", why))
		}
	}
	routes := f.desiredLocked()
	if f.sent && slices.Equal(routes, f.lastSent) {
		f.mu.Unlock()
		return
	}
	f.lastSent, f.sent = routes, true
	f.mu.Unlock()
	// The sink is called outside the lock; GoBGP's watch delivers table
	// events from one goroutine, so pushes are not reordered.
	f.sink.SetRoutes(slices.Clone(routes))
}

// Routes returns the desired routes, sorted.
func (f *FIB) Routes() []Route {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.desiredLocked()
}

// Rejected returns how many best paths the FIB refused, by reason.
func (f *FIB) Rejected() map[string]uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.rejected)
}

// localLocked: a path for one of our own prefixes or via one of our own
// addresses (locally originated); never installed, and not a rejection.
func (f *FIB) localLocked(p netip.Prefix, nh netip.Addr) bool {
	return f.originated[p] || f.ownAddrs[nh] || !nh.IsValid() || nh.IsUnspecified()
}

func (f *FIB) desiredLocked() []Route {
	perNbr := map[netip.Addr]int{}
	var routes []Route
	for _, p := range slices.SortedFunc(maps.Keys(f.best), comparePrefix) {
		b := f.best[p]
		if f.localLocked(p, b.nextHop) {
			continue
		}
		if f.guard.reason(p, b.nextHop, b.from, f.hubs[b.from]) != "" {
			continue
		}
		if f.maxPerNbr > 0 && b.from.IsValid() {
			if perNbr[b.from]++; perNbr[b.from] > f.maxPerNbr {
				continue
			}
		}
		routes = append(routes, Route{Prefix: p, Via: b.nextHop, Metric: f.metric})
	}
	SortRoutes(routes)
	return routes
}
