package controller

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

// newIPsecRepairCollector exports the same counts at scrape time, off the
// loop (State is a locked snapshot).
func newIPsecRepairCollector(c *Controller) *labelledCounter {
	return newLabelledCounter("dmvpnd_ipsec_repairs_total",
		"Connections and credentials dmvpnd loaded into charon that charon had lost or held differently, loaded again, by kind (connection, credential).",
		"kind", func() []labelledCount {
			out := map[string]uint64{}
			c.ipsecRepairCounters(out)
			return []labelledCount{{"connection", out["ipsec_repaired_connections"]}, {"credential", out["ipsec_repaired_credentials"]}}
		})
}
