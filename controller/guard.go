package controller

import (
	"net/netip"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/dmvpnd/dmvpnd/kernel"
)

// Guard drops GRE that no IPsec SA protects and, on hubs, tunnel-sourced
// GRE from an NBMA its tunnel address is not bound to (kernel.GREGuard).
type Guard interface {
	Install(local netip.Addr, bind kernel.SourceBinding) error
	Remove() error
	Counters() (kernel.GuardCounters, error)
	SetBoundSources(want []kernel.BoundSource) error
	InvalidateBoundSources()
}

// applyGuard installs the cleartext GRE guard when the tunnel runs over
// IPsec, before the NHRP socket opens, and removes a previous run's guard
// otherwise. It is left in place when dmvpnd stops, like the rest of the
// kernel state, so that nothing passes in clear while it restarts.
func (c *Controller) applyGuard() error {
	if c.deps.NATSteer != nil && c.deps.IPsec == nil {
		if err := c.deps.NATSteer.Remove(); err != nil {
			return err
		}
	}
	if c.deps.Guard == nil {
		return nil
	}
	if c.deps.IPsec == nil {
		return c.deps.Guard.Remove()
	}
	return c.deps.Guard.Install(c.nbma, c.sourceBinding())
}

// guardCounters adds the guard's drops to counters (show counters).
func (c *Controller) guardCounters(out map[string]uint64) {
	if c.deps.Guard == nil || c.deps.IPsec == nil {
		return
	}
	gc, err := c.deps.Guard.Counters()
	if err != nil {
		c.log.Debug("reading the GRE guard counters", zap.Error(err))
		return
	}
	out["ipsec_gre_clear_in_dropped"] = gc.InPackets
	out["ipsec_gre_clear_out_dropped"] = gc.OutPackets
	if c.sourceBinding().Enabled() {
		out["ipsec_tunnel_src_unbound_dropped"] = gc.UnboundPackets
	}
}

// guardCollector exports the guard's drops at scrape time, off the loop;
// unbound is nil when the tunnel-source binding is off.
type guardCollector struct {
	g             Guard
	desc, unbound *prometheus.Desc
}

func newGuardCollector(g Guard, binding bool) *guardCollector {
	gc := &guardCollector{g: g, desc: prometheus.NewDesc("dmvpnd_ipsec_cleartext_gre_dropped_total",
		"GRE packets dropped because no IPsec SA protected them, by direction (in: arrived in clear; out: would have left in clear).",
		[]string{"direction"}, nil)}
	if binding {
		gc.unbound = prometheus.NewDesc("dmvpnd_ipsec_tunnel_source_unbound_dropped_total",
			"GRE packets dropped because their inner source, a tunnel address, is not bound to the NBMA (and SA) they came from (ipsec.tunnel_source_binding).",
			nil, nil)
	}
	return gc
}

func (gc *guardCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- gc.desc
	if gc.unbound != nil {
		ch <- gc.unbound
	}
}

func (gc *guardCollector) Collect(ch chan<- prometheus.Metric) {
	c, err := gc.g.Counters()
	if err != nil {
		ch <- prometheus.NewInvalidMetric(gc.desc, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(gc.desc, prometheus.CounterValue, float64(c.InPackets), "in")
	ch <- prometheus.MustNewConstMetric(gc.desc, prometheus.CounterValue, float64(c.OutPackets), "out")
	if gc.unbound != nil {
		ch <- prometheus.MustNewConstMetric(gc.unbound, prometheus.CounterValue, float64(c.UnboundPackets))
	}
}
