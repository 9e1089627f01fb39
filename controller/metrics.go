package controller

import (
	"context"
	"net/netip"
	"strings"
	"time"

	"github.com/dmvpnd/dmvpnd/controller/api"
	"github.com/dmvpnd/dmvpnd/controller/config"
	"github.com/dmvpnd/dmvpnd/controller/metrics"
	"github.com/dmvpnd/dmvpnd/ipsec"
	"github.com/dmvpnd/dmvpnd/nhrp"
	"github.com/dmvpnd/dmvpnd/nhrp/engine"
	"github.com/dmvpnd/dmvpnd/routing"
)

// metricsInterval is how often engine counters and state gauges are
// published to Prometheus.
const metricsInterval = 5 * time.Second

// bgpSummaryTimeout bounds the publisher's BGP query.
const bgpSummaryTimeout = 2 * time.Second

// countPacket counts one NHRP packet by its type; short or unknown
// packets are left to the engine's counters.
func (c *Controller) countPacket(b []byte, sent bool) {
	m := c.deps.Metrics
	if m == nil {
		return
	}
	t, ok := nhrp.PeekType(b)
	if !ok || !t.Valid() {
		return
	}
	dir := 0
	if sent {
		dir = 1
	}
	// The labelled counter is looked up once per type and direction, not
	// per packet (a label string and a hash each time).
	ctr := c.pktCounters[dir][t]
	if ctr == nil {
		label := strings.ReplaceAll(t.String(), "-", "_")
		if sent {
			ctr = m.PacketsSent.WithLabelValues(label)
		} else {
			ctr = m.PacketsReceived.WithLabelValues(label)
		}
		c.pktCounters[dir][t] = ctr
	}
	ctr.Inc()
}

// engineCounterMetrics adds the growth of one engine counter to the
// labelled Prometheus counter it feeds. Drop counters keep the engine's
// reason name: drop_<reason> -> dmvpnd_nhrp_drops_total{reason="<reason>"}.
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
	case "rx_held_for_sa":
		m.HeldForSA.Add(delta)
	case "rx_released_by_sa":
		m.ReleasedBySA.Add(delta)
	default:
		if reason, ok := dropReason(name); ok {
			m.Drops.WithLabelValues(reason).Add(delta)
		}
	}
}

// dropReason is the drop reason of an engine drop counter.
func dropReason(counter string) (string, bool) { return strings.CutPrefix(counter, "drop_") }

// counterDeltas returns the growth of the engine counters since the last
// call and remembers the current values. A counter that went down (the
// engine was restarted by a reload) counts from zero. Loop only.
func (c *Controller) counterDeltas() map[string]uint64 {
	cur := c.eng.Counters()
	out := map[string]uint64{}
	for name, v := range cur {
		last := c.lastCounters[name]
		if v < last {
			last = 0
		}
		if v > last {
			out[name] = v - last
		}
	}
	c.lastCounters = cur
	return out
}

// view is what the publisher copies off the loop in one snapshot.
type view struct {
	deltas    map[string]uint64
	nhss      []engine.NHSStatus
	lastReg   map[netip.Addr]time.Time
	peers     map[string]int
	cache     int
	shortcuts int
	bgp       BGP
	cfg       *config.Config
}

// takeView copies the loop state the publisher needs. Loop only.
func (c *Controller) takeView() view {
	v := view{deltas: c.counterDeltas(), nhss: c.eng.NHSs(), lastReg: map[netip.Addr]time.Time{},
		peers: map[string]int{}, shortcuts: len(c.shortcuts), bgp: c.bgp, cfg: c.config()}
	for k, t := range c.lastReg {
		v.lastReg[k] = t
	}
	// Counted, not sorted: no snapshot of the cache is built.
	v.cache = c.eng.CacheLen()
	for st, n := range c.countPeers() {
		v.peers[st] = n
	}
	return v
}

// peerCountCache is the count of peers by state label (dmvpnd_peers) and
// what it was counted from: it stays valid while the engine reports no
// event, holds as many entries and proves the same SAs, for at most
// peerCountMaxAge, so that an idle hub does not walk its 10k peers every
// metricsInterval. (A resolved peer's NBMA can change in place without an
// event: the age bounds how stale that leaves the gauge.) Loop only.
type peerCountCache struct {
	valid   bool
	eng     *engine.Engine
	entries int
	protGen uint64
	at      time.Time
	counts  map[string]int
}

// peerCountMaxAge bounds how long the peer count is reused.
const peerCountMaxAge = time.Minute

// countPeers returns the peers by state label, counted again only when
// the cache is stale (onEngineEvent invalidates it; a new engine, another
// number of entries, a new IPsec snapshot generation or its age too).
// Loop only.
func (c *Controller) countPeers() map[string]int {
	pc := &c.peerCounts
	now := c.deps.Clock.Now()
	sameProofs := c.deps.IPsec == nil || c.protGenKnown && pc.protGen == c.protGen
	if pc.valid && pc.eng == c.eng && pc.entries == c.eng.CacheLen() && sameProofs && now.Sub(pc.at) < peerCountMaxAge {
		return pc.counts
	}
	counts := map[string]int{}
	// Counted by state first: one map write per state, not per peer.
	var up, ike, nhrp int
	for e := range c.eng.Peers() {
		st, ok := peerState(e, c.protectedNow)
		switch {
		case !ok:
		case st == api.PeerUp:
			up++
		case st == api.PeerIKE:
			ike++
		case st == api.PeerNHRP:
			nhrp++
		default:
			counts[stateLabel(st)]++
		}
	}
	for st, n := range map[api.PeerState]int{api.PeerUp: up, api.PeerIKE: ike, api.PeerNHRP: nhrp} {
		if n > 0 {
			counts[stateLabel(st)] += n
		}
	}
	*pc = peerCountCache{valid: true, eng: c.eng, entries: c.eng.CacheLen(), protGen: c.protGen, at: now, counts: counts}
	return counts
}

// stateLabel is a state's label in dmvpnd_peers and dmvpnd_ipsec_sas:
// the API's name in lower case.
func stateLabel[S ~string](st S) string { return strings.ToLower(string(st)) }

// publishLoop publishes the metrics every metricsInterval until ctx ends.
// It runs on its own goroutine: the loop only answers a snapshot request
// (takeView); IPsec state and the BGP summary are read here, so a slow
// GoBGP never delays the loop.
func (c *Controller) publishLoop(ctx context.Context) {
	t := time.NewTicker(metricsInterval)
	defer t.Stop()
	var sessions map[netip.Addr]routing.NeighborState
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			sessions = c.publish(ctx, sessions)
		}
	}
}

// publish takes one snapshot of the loop, publishes it as metrics and
// reports refusals and BGP session changes as events. sessions is the BGP
// state last seen; publish returns the current one.
func (c *Controller) publish(ctx context.Context, sessions map[netip.Addr]routing.NeighborState) map[netip.Addr]routing.NeighborState {
	v, sum, sumErr, ok := c.publishMetrics(ctx)
	if !ok {
		return sessions
	}
	for _, ev := range refusalEvents(v.deltas) {
		c.event(ev)
	}
	if v.bgp != nil && sumErr == nil {
		var evs []api.Event
		evs, sessions = bgpEvents(sessions, sum)
		for _, ev := range evs {
			c.event(ev)
		}
	}
	return sessions
}

// publishMetrics takes one snapshot of the loop and publishes it; it
// returns the snapshot and the BGP summary (ok false: the loop did not
// answer).
func (c *Controller) publishMetrics(ctx context.Context) (v view, sum []routing.NeighborSummary, sumErr error, ok bool) {
	start := time.Now()
	if err := c.run(ctx, func() { v = c.takeView() }); err != nil {
		return v, nil, nil, false
	}
	if v.bgp != nil {
		qctx, cancel := context.WithTimeout(ctx, bgpSummaryTimeout)
		sum, sumErr = v.bgp.Summary(qctx)
		cancel()
	}
	m := c.deps.Metrics
	if m == nil {
		return v, sum, sumErr, true
	}
	m.LoopLatency.Observe(time.Since(start).Seconds())
	m.LoopHeartbeat.Set(float64(c.deps.Clock.Now().UnixNano()) / 1e9)

	for name, d := range v.deltas {
		engineCounterMetrics(m, name, float64(d))
	}
	m.Shortcuts.Set(float64(v.shortcuts))
	m.SetPeers(v.peers)
	m.CacheEntries.Set(float64(v.cache))
	m.CacheLimit.Set(float64(v.cfg.NHRP.Limits.CacheSize))
	up, last := map[string]bool{}, map[string]time.Time{}
	for _, n := range v.nhss {
		up[n.NBMA.String()] = n.State == engine.NHSUp
		if t, ok := v.lastReg[n.NBMA]; ok {
			last[n.NBMA.String()] = t
		}
	}
	m.SetNHSs(up, last)
	if c.deps.IPsec != nil {
		sas := map[string]int{}
		for _, p := range c.deps.IPsec.State().Peers {
			sas[stateLabel(saState(p.Status))]++
		}
		m.SetSAs(sas)
	}
	if v.bgp != nil {
		if sumErr == nil {
			sessions := map[string]int{}
			rcv, acc, rej := 0, 0, 0
			var ns []metrics.BGPNeighbor
			for _, n := range sum {
				sessions[string(n.State)]++
				rcv += int(n.PrefixesReceived)
				acc += int(n.PrefixesAccepted)
				rej += int(n.PrefixesRejected)
				if n.PrefixesRejected > 0 || n.LastDownReason != "" {
					ns = append(ns, metrics.BGPNeighbor{Address: n.Neighbor.String(), Rejected: int(n.PrefixesRejected), LastDown: n.LastDownReason})
				}
			}
			m.SetBGPSessions(sessions)
			m.SetBGPPrefixes(rcv, acc, rej)
			m.SetBGPNeighbors(ns)
		}
	}
	ready := 0.0
	if len(readinessReasons(v.cfg, v.nhss, v.bgp != nil, sum, sumErr)) == 0 {
		ready = 1
	}
	m.Ready.Set(ready)
	return v, sum, sumErr, true
}

// ikeFailure classifies why a peer's SA is down for the reason label of
// dmvpnd_ipsec_ike_failures_total; "" is not a failure (the peer is no
// longer wanted, or no reason was given).
func ikeFailure(reason string) string {
	switch reason {
	case "", ipsec.ReasonPeerRemoved:
		return ""
	case ipsec.ReasonTimeout:
		return "timeout"
	case ipsec.ReasonIKEDeleted:
		return "ike_sa_deleted"
	case ipsec.ReasonChildDeleted:
		return "child_sa_deleted"
	case ipsec.ReasonCharonLost:
		return "charon_lost"
	}
	return "error"
}
