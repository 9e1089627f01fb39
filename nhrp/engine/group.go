package engine

import (
	"net/netip"

	"go.uber.org/zap"

	"github.com/dmvpnd/dmvpnd/nhrp"
)

// NHRP group (Cisco's Per-Tunnel QoS). A peer's group is a claim it makes
// about itself in its registrations, resolution requests and the replies
// it answers for itself; it only selects which of this node's QoS policies
// applies to traffic toward that peer. The engine records it per cache
// entry and reports it; policies, and whether a name is known, are the
// controller's.

// setOwnGroup puts this node's group in a packet it originates.
func (e *Engine) setOwnGroup(p *nhrp.Packet) {
	if e.cfg.Group != "" {
		_ = p.SetGroup(e.cfg.Group) // checked by Config.setDefaults
	}
}

// claimedGroup returns the group the packet in claims for its source, ""
// for none. A Cisco vendor-private extension that is not a valid group is
// counted and logged and the packet treated as carrying none; it is served
// otherwise.
func (e *Engine) claimedGroup(in *inbound) string {
	g, ok, err := in.p.Group()
	if !ok {
		return ""
	}
	if err != nil {
		e.drop(DropGroupInvalid)
		e.log.Info("invalid NHRP group ignored", zap.Stringer("type", in.p.Type), zap.Stringer("proto", in.p.SrcProto),
			zap.Stringer("from", in.from), zap.Error(err))
		return ""
	}
	return g
}

// setGroup records g as pe's group, reporting a change of a peer the
// controller already knows (EventGroup).
func (e *Engine) setGroup(pe *peer, g string) {
	if pe.group == g {
		return
	}
	pe.group = g
	if e.peers.get(pe.proto) == pe && pe.nbma.IsValid() {
		e.emit(Event{Kind: EventGroup, Proto: pe.proto, NBMA: pe.nbma, Claimed: pe.claimed, Observed: pe.observed,
			Binding: pe.kind, Group: g, Reason: "group changed"})
	}
}

// Group returns the NHRP group recorded for the cache entry of proto, ""
// when it has none or there is no entry.
func (e *Engine) Group(proto netip.Addr) string {
	if pe := e.peers.get(proto); pe != nil {
		return pe.group
	}
	return ""
}
