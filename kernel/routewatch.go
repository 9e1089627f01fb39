package kernel

import (
	"strconv"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// routeWatch keeps the unicast routes LookupRoute matches against, as last
// dumped, for as long as nothing changed them: a route subscription (IPv4
// route changes of the namespace, any table) and dmvpnd's own route writes
// bump gen, and a lookup uses the kept routes only while gen is the one
// they were dumped at. A lookup on the way from a hairpinned packet to its
// traffic indication then costs no netlink dump (the lab measured one at
// 25-45 ms under TCG). After notifications the watch lists the routes again
// itself once they pause for routeSettle, so that the first lookup after a
// change finds them listed too. Without a working subscription every
// lookup dumps, as before. A change is seen once its notification has been
// read: the same delay as any netlink watcher's.
type routeWatch struct {
	mu       sync.Mutex
	done     chan struct{} // stops the subscription; nil: none runs
	closed   bool          // Close was called: start no subscription
	gen      uint64
	valid    bool
	validGen uint64
	routes   []RouteMatch // unicast routes of the lookup tables
}

// changed invalidates the kept routes (a route write of dmvpnd's own: seen
// at once, not when its notification arrives).
func (w *routeWatch) changed() {
	w.mu.Lock()
	w.gen++
	w.mu.Unlock()
}

// close stops the subscription for good.
func (w *routeWatch) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = true
	if w.done != nil {
		close(w.done)
		w.done = nil
	}
	w.valid = false
}

// lookupRoutes returns the unicast routes of the lookup tables: the kept
// ones while nothing changed, else a fresh dump (kept when a subscription
// runs and nothing changed during the dump).
func (k *Kernel) lookupRoutes() ([]RouteMatch, error) {
	w := &k.routeWatch
	w.mu.Lock()
	if w.done == nil && !w.closed {
		k.startRouteWatchLocked()
	}
	if w.done != nil && w.valid && w.validGen == w.gen {
		rs := w.routes
		w.mu.Unlock()
		return rs, nil
	}
	gen, watching := w.gen, w.done != nil
	w.mu.Unlock()
	rs, err := k.dumpLookupRoutes()
	if err != nil {
		return nil, err
	}
	w.mu.Lock()
	if watching && w.done != nil && w.gen == gen {
		w.routes, w.valid, w.validGen = rs, true, gen
	}
	w.mu.Unlock()
	return rs, nil
}

// startRouteWatchLocked subscribes to the namespace's IPv4 route changes;
// on failure lookups keep dumping (and the next one tries again).
// Called with w.mu held.
func (k *Kernel) startRouteWatchLocked() {
	w := &k.routeWatch
	ch := make(chan netlink.RouteUpdate, 64)
	done := make(chan struct{})
	opts := netlink.RouteSubscribeOptions{
		ErrorCallback: func(err error) {
			k.log.Debug("kernel: route subscription error", zap.Error(err))
		},
	}
	if k.cfg.NetNS > 0 {
		h := netns.NsHandle(k.cfg.NetNS)
		opts.Namespace = &h
	}
	if err := netlink.RouteSubscribeWithOptions(ch, done, opts); err != nil {
		k.log.Debug("kernel: route subscription failed: lookups dump the routes", zap.Error(err))
		return
	}
	w.done = done
	w.gen++ // whatever was kept predates the subscription
	go func() {
		for range ch {
			w.changed()
			// List the routes again once the changes settle, so that the
			// next lookup (a hairpin's, just after the routes to a spoke's
			// LAN appeared) finds them listed rather than dumping itself.
			if !drainRouteUpdates(ch, w) {
				break
			}
			if _, err := k.lookupRoutes(); err != nil {
				k.log.Debug("kernel: listing routes for lookups", zap.Error(err))
			}
		}
		// Closed: stopped, or the socket failed (notifications lost).
		w.mu.Lock()
		if w.done == done {
			w.done = nil
		}
		w.valid = false
		w.gen++
		w.mu.Unlock()
	}()
}

// dumpLookupRoutes lists the unicast IPv4 routes of the lookup tables.
func (k *Kernel) dumpLookupRoutes() ([]RouteMatch, error) {
	var out []RouteMatch
	for _, table := range k.lookupTables() {
		filter := &netlink.Route{Table: table}
		routes, err := k.nl.RouteListFiltered(unix.AF_INET, filter, netlink.RT_FILTER_TABLE)
		if err != nil {
			return nil, opErr("list routes", "table "+strconv.Itoa(table), err)
		}
		for _, r := range routes {
			if r.Type != unix.RTN_UNICAST {
				continue
			}
			m := RouteMatch{Prefix: routePrefix(r.Dst), Ifindex: r.LinkIndex}
			if gw, ok := netipAddr(r.Gw); ok {
				m.Gateway = gw
			}
			out = append(out, m)
		}
	}
	return out, nil
}

// routeSettle is how long route notifications must pause before the
// watch lists the routes again.
const routeSettle = 100 * time.Millisecond

// drainRouteUpdates takes further notifications from ch until none came
// for routeSettle, invalidating w's routes for each; false when ch closed.
func drainRouteUpdates(ch <-chan netlink.RouteUpdate, w *routeWatch) bool {
	t := time.NewTimer(routeSettle)
	defer t.Stop()
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return false
			}
			w.changed()
			t.Reset(routeSettle)
		case <-t.C:
			return true
		}
	}
}
