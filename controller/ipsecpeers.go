package controller

import (
	"net/netip"
	"slices"
	"strings"

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
//
// Who initiates: a spoke towards its NHS; nobody towards a peer behind NAT
// (its NAT refuses us: it must initiate); a node behind NAT towards anyone;
// spoke to spoke, both ends want the SA at once (both got a traffic
// indication), so the ipsec package breaks the tie by address.
func (c *Controller) wantPeer(ev engine.Event) {
	if c.deps.IPsec == nil {
		return
	}
	claimed := ev.Claimed
	if !claimed.IsValid() {
		claimed = ev.NBMA
	}
	remote := ev.NBMA
	if ev.Observed.IsValid() {
		remote = ev.Observed
	}
	p := ipsec.Peer{RemoteNBMA: remote}
	if claimed != remote {
		p.ClaimedNBMA = claimed
	}
	weAreNATed := c.eng != nil && c.eng.PublicNBMA().IsValid()
	switch {
	case ev.Binding == engine.KindNHS:
		p.Initiate = ipsec.Initiate
	case ev.Binding == engine.KindRegistered:
		p.Initiate = ipsec.Respond
	case p.ClaimedNBMA.IsValid():
		p.Initiate = ipsec.Respond
	case weAreNATed:
		p.Initiate = ipsec.Initiate
	default:
		p.Initiate = ipsec.InitiateTieBreak
	}
	if old, ok := c.peers[claimed]; ok && old == p {
		return
	}
	c.peers[claimed] = p
	c.dirty.ipsec = true
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
	if _, ok := c.peers[claimed]; ok {
		delete(c.peers, claimed)
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

// onIPsecEvent refreshes which NBMA addresses are protected.
func (c *Controller) onIPsecEvent(ev ipsec.Event) {
	c.stats.inc("ipsec_event_" + ev.Status.String())
	c.log.Info("ipsec peer", zap.String("peer", ev.Peer), zap.Stringer("status", ev.Status),
		zap.String("reason", ev.Reason))
	c.refreshTrusted()
}

// refreshTrusted recomputes the NBMA addresses NHRP may be accepted from:
// those with an established SA. For a peer behind NAT (tunnel mode) the GRE
// source is its claimed address, the inner traffic selector of its SA.
func (c *Controller) refreshTrusted() {
	st := c.deps.IPsec.State()
	trusted := map[netip.Addr]bool{}
	for _, p := range st.Peers {
		if p.Status != ipsec.StatusUp {
			continue
		}
		trusted[p.RemoteNBMA] = true
		if p.ClaimedNBMA.IsValid() {
			trusted[p.ClaimedNBMA] = true
		}
	}
	for _, sa := range st.Unattributed {
		if !strings.EqualFold(sa.State, "ESTABLISHED") {
			continue
		}
		if sa.NATRemote {
			// Only the inner (claimed) address the SA was bound to counts.
			for _, ch := range sa.Children {
				for _, ts := range ch.RemoteTS {
					if a, ok := tsHost(ts); ok {
						trusted[a] = true
					}
				}
			}
			continue
		}
		trusted[sa.Remote.Addr()] = true
	}
	c.trusted = trusted
}

// tsHost parses a host traffic selector such as "172.16.0.2/32[gre]".
func tsHost(ts string) (netip.Addr, bool) {
	if i := strings.IndexByte(ts, '['); i >= 0 {
		ts = ts[:i]
	}
	p, err := netip.ParsePrefix(ts)
	if err != nil || !p.IsSingleIP() {
		return netip.Addr{}, false
	}
	return p.Addr(), true
}

// isTrusted reports whether NHRP from nbma may change state (and may be
// sent to it). An SA that a peer initiated to the responder connection
// raises no event: the peer is not wanted until its registration, which
// travels over that very SA, arrives. So before refusing, look at the
// latest snapshot, whose unattributed SAs include it.
func (c *Controller) isTrusted(nbma netip.Addr) bool {
	if c.deps.IPsec == nil {
		return true
	}
	if !c.trusted[nbma] {
		c.refreshTrusted()
	}
	return c.trusted[nbma]
}
