package controller

import (
	"context"
	"errors"
	"slices"

	"go.uber.org/zap"

	"github.com/dmvpnd/dmvpnd/kernel"
	"github.com/dmvpnd/dmvpnd/routing"
)

// fibSink receives BGP's best paths from the routing package's goroutine
// and hands them to the loop.
type fibSink struct{ c *Controller }

func (s fibSink) SetRoutes(routes []routing.Route) {
	s.c.bgpMu.Lock()
	s.c.pendingBGP = slices.Clone(routes)
	s.c.bgpNew = true
	s.c.bgpMu.Unlock()
	select {
	case s.c.wake <- struct{}{}:
	default:
	}
}

// takeBGPRoutes moves the latest BGP route set into the loop's state.
func (c *Controller) takeBGPRoutes() {
	c.bgpMu.Lock()
	defer c.bgpMu.Unlock()
	if !c.bgpNew {
		return
	}
	c.bgpRoutes, c.bgpNew = c.pendingBGP, false
	c.dirty.routes = true
}

// desiredRoutes merges BGP routes and usable NHRP shortcuts. A shortcut is
// installed with a lower metric than BGP routes, so it wins at equal prefix
// length and, being usually more specific than a Phase 3 summary, by
// longest match otherwise.
func (c *Controller) desiredRoutes() []kernel.Route {
	out := make([]kernel.Route, 0, len(c.bgpRoutes)+len(c.shortcuts))
	for _, r := range c.bgpRoutes {
		out = append(out, kernel.Route{Dst: r.Prefix, Via: r.Via, Metric: r.Metric})
	}
	for p, via := range c.shortcuts {
		out = append(out, kernel.Route{Dst: p, Via: via, Metric: shortcutMetric})
	}
	out = c.withAdopted(out)
	slices.SortFunc(out, func(a, b kernel.Route) int {
		if c := a.Dst.Addr().Compare(b.Dst.Addr()); c != 0 {
			return c
		}
		if a.Dst.Bits() != b.Dst.Bits() {
			return a.Dst.Bits() - b.Dst.Bits()
		}
		return a.Metric - b.Metric
	})
	return out
}

// reconcile pushes whatever desired state is dirty. A failure leaves it
// dirty; the loop retries with backoff.
func (c *Controller) reconcile(ctx context.Context) {
	if ctx.Err() != nil {
		return
	}
	// Nothing is pushed before the previous run's routes are adopted.
	adopted := c.adoptKernelState()
	if adopted {
		c.settleAdoption()
	}
	if c.dirty.routes && adopted {
		c.pushRoutes()
	}
	if adopted {
		c.reconcileBinding()
	}
	c.reconcileNATSteer()
	if c.dirty.ipsec {
		if c.deps.IPsec == nil {
			c.dirty.ipsec = false
		} else if err := c.reconcileIPsec(); err != nil {
			c.stats.inc("reconcile_errors_ipsec")
			c.countReconcileError("ipsec")
			c.log.Warn("reconciling ipsec peers", zap.Error(err))
		} else {
			c.dirty.ipsec = false
		}
	}
	c.reconcileQoS()
}

func (c *Controller) countReconcileError(subsystem string) {
	if c.deps.Metrics != nil {
		c.deps.Metrics.ReconcileErrors.WithLabelValues(subsystem).Inc()
	}
}

// pushRoutes applies the desired routes. The kernel skips what it refuses
// and applies the rest; a failure is retried with backoff when the retry
// timer fires (routesFailed), never per loop iteration. Each refused route
// is logged once, when it starts failing.
func (c *Controller) pushRoutes() {
	err := c.deps.Dataplane.SetRoutes(c.desiredRoutes())
	c.dirty.routes = false
	c.routesFailed = err != nil
	refused := map[kernel.Route]bool{}
	if err != nil {
		c.stats.inc("reconcile_errors_routes")
		c.countReconcileError("kernel")
		var re *kernel.RouteErrors
		if !errors.As(err, &re) {
			c.log.Warn("reconciling routes", zap.Error(err))
		} else {
			for _, f := range re.Failed {
				refused[f.Route] = true
				if !c.refusedRoutes[f.Route] {
					c.stats.inc("routes_refused")
					c.log.Warn("kernel refused route", zap.String("op", f.Op), zap.Stringer("route", f.Route), zap.Error(f.Err))
				}
			}
		}
	}
	c.refusedRoutes = refused
}
