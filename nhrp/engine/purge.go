package engine

import (
	"net/netip"
	"slices"

	"github.com/dmvpnd/dmvpnd/nhrp"
)

const purgeTries = 3

// purgeResolvers tells every client that resolved pe (NHS role) to drop
// what it learnt about pe (§5.2.5).
func (e *Engine) purgeResolvers(pe *peer) {
	resolvers := pe.extra.resolvers
	protos := make([]netip.Addr, 0, len(resolvers))
	for p := range resolvers {
		protos = append(protos, p)
	}
	slices.SortFunc(protos, netip.Addr.Compare)
	for _, proto := range protos {
		to := resolvers[proto]
		if rp := e.peers.get(proto); rp != nil && (rp.kind == KindRegistered || rp.kind == KindNHS) {
			to = rp.nbma
		}
		if to.IsValid() {
			e.sendPurge(proto, to, false, pe.proto)
		}
	}
	pe.extra.resolvers = nil
}

// sendPurge sends a Purge Request for addrs to dstProto at nbma, tracked
// for its reply unless noReply.
func (e *Engine) sendPurge(dstProto, nbma netip.Addr, noReply bool, addrs ...netip.Addr) {
	if !noReply && e.pendingFull() {
		return
	}
	id := e.newID()
	p := nhrp.NewPurgeRequest(e.cfg.NBMA, e.cfg.Proto, dstProto, id, noReply, addrs...)
	p.HopCount = e.cfg.HopCount
	b := e.send(p, nbma)
	if b == nil {
		return
	}
	e.counters.inc(cPurgesSent)
	if !noReply {
		e.track(&pending{id: id, kind: pendPurge, target: dstProto, to: nbma, max: purgeTries, wait: e.cfg.RetryMin}, b)
	}
}

// Deregister purges this node's registrations at every NHS it is
// registered with (no reply wanted) and stops registering. Call it on a
// clean shutdown.
func (e *Engine) Deregister() {
	e.now = e.cfg.Clock.Now()
	for _, n := range e.nhss {
		if n.state == NHSUp {
			dst := n.proto
			if !dst.IsValid() {
				dst = e.cfg.Proto
			}
			e.sendPurge(dst, n.cfg.NBMA, true, e.cfg.Proto)
		}
		n.wanted = false
		e.cancel(n.timer)
		n.pkt = nil
		e.setNHSState(n, NHSDown, "deregistered")
	}
}

// handlePurgeRequest drops what the CIEs name and answers unless N is set.
func (e *Engine) handlePurgeRequest(in *inbound) {
	p := in.p
	e.counters.inc(cPurgesReceived)
	if perr := p.UnrecognizedCompulsory(); perr != nil {
		e.drop(DropUnknownExt)
		e.sendError(perr.Code, perr.Offset, p, in.raw, in.from)
		return
	}
	for i := range p.CIEs {
		c := &p.CIEs[i]
		if !c.ClientProto.IsValid() {
			continue
		}
		bits := c.EffectivePrefixLength(c.ClientProto.BitLen())
		if c.PrefixLength == 0 {
			bits = c.ClientProto.BitLen()
		}
		e.purgeLocal(netip.PrefixFrom(c.ClientProto, bits).Masked(), p.SrcProto, in)
	}
	if p.Flags&nhrp.FlagPurgeNoReply != 0 {
		return
	}
	p.Type = nhrp.TypePurgeReply
	p.HopCount = e.cfg.HopCount
	e.send(p, in.from)
}

// purgeLocal removes cached bindings, shortcuts and negative entries in
// pfx that the purge's sender may remove: a registration only its owner
// (the peer that registered it, purging itself); a resolved or requester
// entry, a shortcut or a negative entry a configured NHS (which answered
// or relayed the resolution) or the entry's own peer (from its NBMA).
// Anything else in pfx is left alone and counted (drop_wrong_responder).
func (e *Engine) purgeLocal(pfx netip.Prefix, src netip.Addr, in *inbound) {
	from := in.from
	nhs := e.isNHS(from)
	var victims []*peer
	if pfx.IsSingleIP() {
		if pe := e.peers.get(pfx.Addr()); pe != nil {
			victims = append(victims, pe)
		}
	} else {
		for pe := range e.peers.all() {
			if pfx.Contains(pe.proto) {
				victims = append(victims, pe)
			}
		}
	}
	slices.SortFunc(victims, func(a, b *peer) int { return a.proto.Compare(b.proto) })
	refused := false
	for _, pe := range victims {
		switch pe.kind {
		case KindResolved, KindRequester:
			if nhs || pe.nbma == from {
				e.removePeer(pe, "purged")
			} else {
				refused = true
			}
		case KindRegistered:
			if pe.proto == src && pe.owner == in.owner {
				e.removePeer(pe, "purged by its owner")
			} else {
				refused = true
			}
		}
	}
	for _, sc := range sortedShortcuts(e.shortcuts) {
		if sc.prefix.Overlaps(pfx) {
			if nhs || sc.via.nbma == from {
				e.removeShortcut(sc, "purged")
			} else {
				refused = true
			}
		}
	}
	if nhs {
		for a := range e.negative {
			if pfx.Contains(a) {
				e.removeNegative(a)
			}
		}
	}
	if refused {
		e.drop(DropWrongResponder)
	}
}

func (e *Engine) handlePurgeReply(in *inbound) {
	pd := e.pending[in.p.RequestID]
	if pd == nil || pd.kind != pendPurge || in.p.SrcProto != e.cfg.Proto {
		e.drop(DropUnmatched)
		return
	}
	if pd.to != in.from {
		e.drop(DropWrongResponder)
		return
	}
	e.finishPending(pd)
}
