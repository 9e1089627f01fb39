package controller

import (
	"context"
	"strings"
	"time"

	"github.com/dmvpnd/dmvpnd/controller/metrics"
	"github.com/dmvpnd/dmvpnd/ipsec"
	"github.com/dmvpnd/dmvpnd/nhrp"
	"github.com/dmvpnd/dmvpnd/nhrp/engine"
)

// metricsInterval is how often engine counters and state gauges are
// published to Prometheus.
const metricsInterval = 5 * time.Second

// countPacket counts one NHRP packet by its type octet (ar$op.type at
// offset 17); short or unknown packets are left to the engine's counters.
func (c *Controller) countPacket(b []byte, sent bool) {
	m := c.deps.Metrics
	if m == nil || len(b) < 18 {
		return
	}
	t := nhrp.Type(b[17])
	if !t.Valid() {
		return
	}
	label := strings.ReplaceAll(t.String(), "-", "_")
	if sent {
		m.PacketsSent.WithLabelValues(label).Inc()
	} else {
		m.PacketsReceived.WithLabelValues(label).Inc()
	}
}

// engineCounterMetrics maps engine counters to labelled Prometheus
// counters: name -> function adding a delta.
func engineCounterMetrics(m *metrics.Metrics, name string, delta float64) {
	switch name {
	case "registrations_accepted":
		m.Registrations.WithLabelValues("received", "success").Add(delta)
	case "registrations_refused":
		m.Registrations.WithLabelValues("received", "failure").Add(delta)
	case "resolutions_answered":
		m.Resolutions.WithLabelValues("received", "success").Add(delta)
	case "resolution_timeouts":
		m.Resolutions.WithLabelValues("sent", "timeout").Add(delta)
	case "traffic_indications_sent":
		m.Redirects.WithLabelValues("sent").Add(delta)
	case "traffic_indications_received":
		m.Redirects.WithLabelValues("received").Add(delta)
	default:
		if reason, ok := strings.CutPrefix(name, "drop_"); ok {
			m.Drops.WithLabelValues(reason).Add(delta)
		}
	}
}

// publishMetrics adds the engine counters' growth since the last call and
// sets the state gauges. It runs on the loop.
func (c *Controller) publishMetrics(ctx context.Context) {
	m := c.deps.Metrics
	if m == nil {
		return
	}
	cur := c.eng.Counters()
	for name, v := range cur {
		if d := v - c.lastCounters[name]; d > 0 && v >= c.lastCounters[name] {
			engineCounterMetrics(m, name, float64(d))
		}
	}
	c.lastCounters = cur
	m.Shortcuts.Set(float64(len(c.shortcuts)))

	peers := map[string]int{}
	for _, e := range c.eng.Cache() {
		switch {
		case e.Kind == engine.KindNegative:
		case !e.NBMA.IsValid():
			peers["nhrp"]++
		case !c.eng.Proven(e.NBMA):
			peers["ike"]++
		default:
			peers["up"]++
		}
	}
	m.SetPeers(peers)
	if c.deps.IPsec != nil {
		sas := map[string]int{}
		for _, p := range c.deps.IPsec.State().Peers {
			switch p.Status {
			case ipsec.StatusUp:
				sas["established"]++
			case ipsec.StatusConnecting:
				sas["connecting"]++
			default:
				sas["down"]++
			}
		}
		m.SetSAs(sas)
	}
	if c.bgp != nil {
		if sum, err := c.bgp.Summary(ctx); err == nil {
			sessions := map[string]int{}
			for _, n := range sum {
				sessions[string(n.State)]++
			}
			m.SetBGPSessions(sessions)
		}
	}
}
