package controller

import (
	"net/netip"
	"slices"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/dmvpnd/dmvpnd/ipsec"
	"github.com/dmvpnd/dmvpnd/nhrp/engine"
)

// wantStaticPeers asks for SAs to every configured NHS before the first
// registration leaves: a spoke always initiates towards its hubs.
func (c *Controller) wantStaticPeers() {
	for _, n := range c.config().NHRP.NHS {
		c.peers[n.NBMA] = ipsec.Peer{RemoteNBMA: n.NBMA, Initiate: ipsec.Initiate}
	}
	c.dirty.ipsec = true
}

// wantPeer adds the IPsec peer behind an NHRP peer that came up.
func (c *Controller) wantPeer(ev engine.Event) {
	if c.deps.IPsec == nil {
		return
	}
	var public netip.Addr
	if c.eng != nil {
		public = c.eng.PublicNBMA()
	}
	claimed, p := ipsecPeerFor(ev, public)
	key := aliasedPeer(ev, claimed, &p)
	if old, ok := c.peers[key]; ok && old == p {
		return
	}
	c.peers[key] = p
	c.dirty.ipsec = true
}

// aliasedPeer returns the key of an NHRP peer's IPsec peer: its claimed
// NBMA, or, for a peer whose GRE goes to a NAT alias (another peer behind
// another NAT claims the same private NBMA, natalias.go), the alias; the
// latter also gets a connection name of its own.
func aliasedPeer(ev engine.Event, claimed netip.Addr, p *ipsec.Peer) netip.Addr {
	if !ev.NBMA.IsValid() || ev.NBMA == claimed || !ev.Observed.IsValid() || ev.NBMA == ev.Observed {
		return claimed
	}
	p.Name = claimed.String() + "-at-" + ev.Observed.String()
	return ev.NBMA
}

// ipsecPeerFor derives the IPsec peer of an NHRP peer event, keyed by the
// peer's claimed NBMA; public is our own post-NAT address (zero when we
// are not behind NAT).
//
// Where IKE goes: to the peer's post-NAT address when it is behind NAT,
// with its claimed address as the tunnel-mode inner address, except when
// it is behind the same NAT address as we are: then both talk over their
// private addresses directly (docs/strongswan.md, "Who initiates"), which the engine also
// uses as GRE destination.
//
// Who initiates: a spoke towards its NHS; nobody towards a peer behind NAT
// (its NAT refuses us: it must initiate); a node behind NAT towards anyone;
// spoke to spoke, both ends want the SA at once (both got a traffic
// indication), so the ipsec package breaks the tie by address.
func ipsecPeerFor(ev engine.Event, public netip.Addr) (netip.Addr, ipsec.Peer) {
	claimed := ev.Claimed
	if !claimed.IsValid() {
		claimed = ev.NBMA
	}
	remote := ev.NBMA
	if ev.Observed.IsValid() && ev.Observed != public {
		remote = ev.Observed
	} else if ev.Observed.IsValid() {
		remote = claimed // behind our own NAT address: the private LAN
	}
	p := ipsec.Peer{RemoteNBMA: remote}
	if claimed != remote {
		p.ClaimedNBMA = claimed
	}
	switch {
	case ev.Binding == engine.KindNHS:
		p.Initiate = ipsec.Initiate
	case ev.Binding == engine.KindRegistered:
		p.Initiate = ipsec.Respond
	case p.ClaimedNBMA.IsValid():
		p.Initiate = ipsec.Respond
	case public.IsValid() && !ev.Observed.IsValid():
		p.Initiate = ipsec.Initiate
	default:
		p.Initiate = ipsec.InitiateTieBreak
	}
	return claimed, p
}

// unwantPeer drops the IPsec peer of an NHRP peer that went away, unless it
// is a configured NHS (those stay wanted for the node's lifetime).
func (c *Controller) unwantPeer(ev engine.Event) {
	if c.deps.IPsec == nil {
		return
	}
	claimed := ev.Claimed
	if !claimed.IsValid() {
		claimed = ev.NBMA
	}
	for _, n := range c.config().NHRP.NHS {
		if n.NBMA == claimed {
			return
		}
	}
	key := aliasedPeer(ev, claimed, &ipsec.Peer{})
	if _, ok := c.peers[key]; ok {
		delete(c.peers, key)
		c.dirty.ipsec = true
	}
}

// reconcileIPsec pushes the whole wanted peer set.
func (c *Controller) reconcileIPsec() error {
	peers := make([]ipsec.Peer, 0, len(c.peers))
	for _, p := range c.peers {
		peers = append(peers, p)
	}
	slices.SortFunc(peers, func(a, b ipsec.Peer) int { return a.RemoteNBMA.Compare(b.RemoteNBMA) })
	return c.deps.IPsec.SetPeers(peers)
}

// onIPsecEvent reports SA changes (event, IKE failure counter) and hands
// the engine the SAs' new protections.
func (c *Controller) onIPsecEvent(ev ipsec.Event) {
	c.reportIPsecEvent(ev)
	c.syncProtections()
}

// reportIPsecEvent counts ev, keeps which peers' SAs are up and reports
// it to the operator. Loop only.
func (c *Controller) reportIPsecEvent(ev ipsec.Event) {
	c.stats.inc("ipsec_event_" + ev.Status.String())
	// An initiator whose established SA is deleted re-initiates at once:
	// it goes from up to connecting, never down. That is a loss all the
	// same (seen in the lab: sa-up twice, no sa-down, no IKE failure).
	lost := c.saUp[ev.Peer] && ev.Status == ipsec.StatusConnecting
	if ev.Status == ipsec.StatusUp {
		c.saUp[ev.Peer] = true
	} else {
		delete(c.saUp, ev.Peer)
	}
	if r := ikeFailure(ev.Reason); (ev.Status == ipsec.StatusDown || lost) && r != "" && c.deps.Metrics != nil {
		c.deps.Metrics.IKEFailures.WithLabelValues(r).Inc()
	}
	if oe, ok := ipsecEvent(ev, lost); ok {
		c.event(oe)
	} else {
		c.log.Debug("ipsec peer", zap.String("peer", ev.Peer), zap.Stringer("status", ev.Status),
			zap.String("reason", ev.Reason))
	}
}

// reportQueuedIPsecEvents reports the IPsec events already queued. The
// IPsec side queues a snapshot's events before its Generation shows
// (ipsec.Manager.publish), so after this the operator has heard of every
// SA the snapshot about to be acted on holds: an SA is reported up
// before the shortcut or registration it protects. Loop only.
func (c *Controller) reportQueuedIPsecEvents() {
	for {
		select {
		case ev, ok := <-c.ipsecEvents:
			if !ok {
				return
			}
			c.reportIPsecEvent(ev)
		default:
			return
		}
	}
}

// newLoadsRefusedMetric exports, at scrape time and off the loop, how many
// per-peer connections charon refused (ipsec.State.LoadsRefused; show
// counters: ipsec_peer_loads_refused).
func newLoadsRefusedMetric(p ipsec.Protector) prometheus.Collector {
	return prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "dmvpnd", Subsystem: "ipsec", Name: "peer_loads_refused_total",
		Help: "Per-peer IPsec connections charon refused (each refused load-conn; the peer is retried with backoff, the others are unaffected)."},
		func() float64 { return float64(p.State().LoadsRefused) })
}
