package controller

import (
	"github.com/prometheus/client_golang/prometheus"
)

// ipsecRepairCounters adds the IPsec manager's repairs to counters (show
// counters): connections and credentials dmvpnd had loaded into charon
// that charon no longer held, or held differently, and that were loaded
// again (ipsec/verify.go). Growth means someone else (swanctl
// --load-all, an operator) changes dmvpnd's charon.
func (c *Controller) ipsecRepairCounters(out map[string]uint64) {
	if c.deps.IPsec == nil {
		return
	}
	st := c.deps.IPsec.State()
	out["ipsec_repaired_connections"] = st.RepairedConns
	out["ipsec_repaired_credentials"] = st.RepairedCreds
}

// ipsecRepairCollector exports the same counts at scrape time, off the loop
// (State is a locked snapshot).
type ipsecRepairCollector struct {
	c    *Controller
	desc *prometheus.Desc
}

func newIPsecRepairCollector(c *Controller) *ipsecRepairCollector {
	return &ipsecRepairCollector{c: c, desc: prometheus.NewDesc("dmvpnd_ipsec_repairs_total",
		"Connections and credentials dmvpnd loaded into charon that charon had lost or held differently, loaded again, by kind (connection, credential).",
		[]string{"kind"}, nil)}
}

func (rc *ipsecRepairCollector) Describe(ch chan<- *prometheus.Desc) { ch <- rc.desc }

func (rc *ipsecRepairCollector) Collect(ch chan<- prometheus.Metric) {
	out := map[string]uint64{}
	rc.c.ipsecRepairCounters(out)
	ch <- prometheus.MustNewConstMetric(rc.desc, prometheus.CounterValue, float64(out["ipsec_repaired_connections"]), "connection")
	ch <- prometheus.MustNewConstMetric(rc.desc, prometheus.CounterValue, float64(out["ipsec_repaired_credentials"]), "credential")
}
