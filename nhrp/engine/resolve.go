package engine

import (
	"net/netip"
	"time"

	"github.com/dmvpnd/dmvpnd/nhrp"
	"go.uber.org/zap"
)

// NeighborMiss reports that the kernel needs (or, for an entry that aged,
// still uses) the link-layer address of the tunnel address dst. A known
// peer is marked as in use, which keeps its shortcuts refreshed; an
// unknown one is resolved.
func (e *Engine) NeighborMiss(dst netip.Addr) {
	e.now = e.cfg.Clock.Now()
	if pe := e.peers.get(dst); pe != nil && pe.kind != KindRequester {
		if pe.extra != nil { // only shortcuts read it
			pe.extra.lastUsed = e.now
		}
		return
	}
	if dst == e.cfg.Proto {
		return
	}
	e.resolve(dst)
}

// Resolve sends a Resolution Request for dst unless one is outstanding or
// a negative entry is cached (dmvpnctl "resolve", or controller policy).
func (e *Engine) Resolve(dst netip.Addr) {
	e.now = e.cfg.Clock.Now()
	e.resolve(dst)
}

// resolve sends a Resolution Request for target to the peer of a usable
// shortcut covering it, else to the primary NHS.
func (e *Engine) resolve(target netip.Addr) {
	if _, ok := e.resolving[target]; ok {
		return
	}
	if _, ok := e.negative[target]; ok {
		e.drop(DropNegative)
		return
	}
	if e.pendingFull() {
		return
	}
	var to netip.Addr
	if sc := e.shortcutFor(target); sc != nil && sc.via.path == pathUp {
		to = sc.via.nbma
	} else if n := e.primaryNHS(); n != nil {
		to = n.cfg.NBMA
	} else {
		e.addNegative(target, "no NHS up")
		return
	}
	id := e.newID()
	p := nhrp.NewResolutionRequest(e.cfg.NBMA, e.cfg.Proto, target, id, e.cfg.holdingSeconds(), e.cfg.MTU)
	p.HopCount = e.cfg.HopCount
	p.SetNATAddress() // empty: the first NHS fills in our post-NAT address
	e.setOwnGroup(p)
	b := e.send(p, to)
	if b == nil {
		return
	}
	e.counters.inc(cResolutionsSent)
	e.track(&pending{id: id, kind: pendResolve, target: target, to: to, max: e.cfg.ResolveTries, wait: e.cfg.RetryMin}, b)
}

func (e *Engine) route(dst netip.Addr) (Route, bool) {
	if e.cfg.Router == nil {
		return Route{}, false
	}
	return e.cfg.Router.Lookup(dst)
}

func hostPrefix(a netip.Addr) netip.Prefix { return netip.PrefixFrom(a, a.BitLen()) }

func transitCIEs(p *nhrp.Packet, t nhrp.ExtensionType) []nhrp.CIE {
	if ext := p.Extension(t); ext != nil && !ext.Opaque {
		return ext.CIEs
	}
	return nil
}

func (e *Engine) appendTransit(p *nhrp.Packet, t nhrp.ExtensionType) {
	ext := p.Extension(t)
	if ext == nil || ext.Opaque {
		ext = p.AddExtension(nhrp.Extension{Type: t, Compulsory: true})
	}
	ext.CIEs = append(ext.CIEs, e.ownCIE())
}

// handleResolutionRequest answers a request we are authoritative for, or
// forwards it along the NHS path (§5.2.1, §5.2.2).
func (e *Engine) handleResolutionRequest(in *inbound) {
	p := in.p
	if p.SrcProto == e.cfg.Proto {
		e.drop(DropLoop)
		return
	}
	fwd := transitCIEs(p, nhrp.ExtensionForwardTransit)
	for i := range fwd {
		if fwd[i].ClientProto == e.cfg.Proto {
			e.drop(DropLoop)
			e.sendError(nhrp.ErrorLoopDetected, 0, p, in.raw, in.from)
			return
		}
	}
	transit := len(fwd) > 0
	if !transit {
		e.directFrom(p.SrcProto, in.from)
	}
	target := p.DstProto
	if target == e.cfg.Proto {
		e.answerLocal(in, hostPrefix(target), transit)
		return
	}
	if e.cfg.Server {
		if pe := e.peers.get(target); pe != nil && pe.kind == KindRegistered {
			if perr := p.UnrecognizedCompulsory(); perr != nil {
				e.drop(DropUnknownExt)
				e.sendError(perr.Code, perr.Offset, p, in.raw, in.from)
				return
			}
			e.noteResolver(pe, p.SrcProto, in.from)
			left := max(pe.expires().Sub(e.now)/time.Second, 1)
			e.answer(in, hostPrefix(target), pe.claimed, pe.proto, pe.observed, pe.group, uint16(min(left, 65535)))
			return
		}
	}
	if r, ok := e.route(target); ok && !r.ViaTunnel {
		e.answerLocal(in, r.Prefix.Masked(), transit)
		return
	}
	if !e.cfg.Server {
		e.nak(in)
		return
	}
	next := e.nextHop(target)
	if !next.IsValid() {
		e.nak(in)
		return
	}
	e.forwardRequest(in, next, transit)
}

// answerLocal answers as the egress: this node owns pfx.
func (e *Engine) answerLocal(in *inbound, pfx netip.Prefix, transit bool) {
	if perr := in.p.UnrecognizedCompulsory(); perr != nil {
		e.drop(DropUnknownExt)
		e.sendError(perr.Code, perr.Offset, in.p, in.raw, in.from)
		return
	}
	e.learnRequester(in, transit)
	e.answer(in, pfx, e.cfg.NBMA, e.cfg.Proto, e.myPublic, e.cfg.Group, e.cfg.holdingSeconds())
}

// answer turns the request into its reply in place and sends it back to
// the previous hop. group is the responder's (the owner of pfx): the
// request's group, the requester's, is not echoed.
func (e *Engine) answer(in *inbound, pfx netip.Prefix, nbma, proto, observed netip.Addr, group string, holding uint16) {
	p := in.p
	pl := uint8(pfx.Bits())
	if pfx.Bits() == pfx.Addr().BitLen() {
		pl = nhrp.HostPrefixLength
	}
	p.Type = nhrp.TypeResolutionReply
	p.Flags = p.Flags&(nhrp.FlagResolutionRouter|nhrp.FlagResolutionStableSource|nhrp.FlagCiscoNAT) |
		nhrp.FlagResolutionAuthoritative | nhrp.FlagResolutionStableDest
	p.HopCount = e.cfg.HopCount
	p.CIEs = append(p.CIEs[:0], nhrp.CIE{PrefixLength: pl, MTU: e.cfg.MTU, HoldingTime: holding, ClientNBMA: nbma, ClientProto: proto})
	e.fillResponder(p)
	if obs := natted(nbma, observed); obs.IsValid() {
		addNAT(p, obs, proto)
	}
	_ = p.SetGroup(group) // valid: our own (checked in Config) or a decoded one
	e.counters.inc(cResolutionsAnswer)
	e.send(p, in.from)
}

// nak answers with CIE code 12 (no binding exists).
func (e *Engine) nak(in *inbound) {
	p := in.p
	p.Type = nhrp.TypeResolutionReply
	p.HopCount = e.cfg.HopCount
	p.CIEs = append(p.CIEs[:0], nhrp.CIE{Code: nhrp.CIENoBinding, PrefixLength: nhrp.HostPrefixLength})
	e.fillResponder(p)
	_ = p.SetGroup("") // nobody's group: do not echo the requester's
	e.drop(DropNoRoute)
	e.send(p, in.from)
}

// nextHop is the NBMA address a request for target is forwarded to: the
// registered client owning it, the client the route points at, or our own
// NHS.
func (e *Engine) nextHop(target netip.Addr) netip.Addr {
	if pe := e.peers.get(target); pe != nil && (pe.kind == KindRegistered || pe.kind == KindNHS) {
		return pe.nbma
	}
	if r, ok := e.route(target); ok && r.ViaTunnel && r.NextHop.IsValid() && r.NextHop != e.cfg.Proto {
		if pe := e.peers.get(r.NextHop); pe != nil && (pe.kind == KindRegistered || pe.kind == KindNHS) {
			return pe.nbma
		}
	}
	if n := e.primaryNHS(); n != nil {
		return n.cfg.NBMA
	}
	return netip.Addr{}
}

// forwardRequest passes a request on as a transit NHS.
func (e *Engine) forwardRequest(in *inbound, next netip.Addr, transit bool) {
	p := in.p
	if p.HopCount <= 1 {
		e.drop(DropHopCount)
		e.sendError(nhrp.ErrorHopCountExceeded, 9, p, in.raw, in.from)
		return
	}
	p.HopCount--
	if !transit {
		// First NHS: tell the egress where the requester really is.
		if obs := natted(p.SrcNBMA, in.outer); obs.IsValid() {
			addNAT(p, obs, p.SrcProto)
		}
	}
	e.appendTransit(p, nhrp.ExtensionForwardTransit)
	e.counters.inc(cResolutionsForward)
	e.send(p, next)
}

// learnRequester caches the source of a request we answer (S flag set and
// a holding time given), so a later purge or resolution can use it.
func (e *Engine) learnRequester(in *inbound, transit bool) {
	p := in.p
	if p.Flags&nhrp.FlagResolutionStableSource == 0 || len(p.CIEs) == 0 || p.CIEs[0].HoldingTime == 0 {
		return
	}
	holding := p.CIEs[0].Holding()
	claimed := p.SrcNBMA
	var observed, nbma netip.Addr
	if transit {
		observed = natted(claimed, natObserved(p, p.SrcProto))
		nbma = e.directNBMA(claimed, observed)
	} else {
		observed = natted(claimed, in.outer)
		nbma = in.from
	}
	group := e.claimedGroup(in)
	pe := e.peers.get(p.SrcProto)
	switch {
	case pe == nil:
		pe = &peer{proto: p.SrcProto, kind: KindRequester, claimed: claimed, observed: observed, nbma: nbma, heard: !transit, group: group}
		if !e.addPeer(pe, "resolution requester") {
			return
		}
	case pe.kind == KindRequester:
		pe.heard = !transit || (pe.heard && pe.nbma == nbma)
		pe.claimed, pe.observed, pe.nbma = claimed, observed, nbma
		e.setGroup(pe, group)
	default:
		return
	}
	e.setExpiry(pe, holding)
}

func (e *Engine) noteResolver(pe *peer, proto, nbma netip.Addr) {
	x := pe.more()
	if x.resolvers == nil {
		x.resolvers = map[netip.Addr]netip.Addr{}
	}
	if _, ok := x.resolvers[proto]; ok || len(x.resolvers) < maxResolversPerEntry {
		x.resolvers[proto] = nbma
	}
}

// handleResolutionReply completes our own request or, as a transit NHS,
// passes the reply back towards the requester.
func (e *Engine) handleResolutionReply(in *inbound) {
	p := in.p
	if p.SrcProto != e.cfg.Proto {
		e.forwardReply(in)
		return
	}
	pd := e.pending[p.RequestID]
	if pd == nil || pd.kind == pendPurge || pd.target != p.DstProto {
		e.drop(DropUnmatched)
		return
	}
	// A reply comes from the node asked, or, for a request sent through
	// an NHS, straight from the responder: FRR and Cisco answer a
	// forwarded request directly when they already hold the requester.
	// Such a reply bypassed the NHS that vouches for replies it relays
	// (replyVouched), so below it must name a binding this node already
	// holds at the sender, and it binds the target host alone.
	direct := in.from != pd.to
	if direct && (!e.isNHS(pd.to) || !e.heldResponder(p, in.from)) { // forged, or a wrong path
		e.drop(DropWrongResponder)
		return
	}
	e.finishPending(pd)
	if len(p.CIEs) == 0 || p.CIEs[0].Code != nhrp.CIESuccess || !p.CIEs[0].ClientNBMA.IsValid() {
		reason := "no CIE"
		if len(p.CIEs) > 0 {
			reason = "refused: " + p.CIEs[0].Code.String()
		}
		e.pendingFailed(pd, reason)
		return
	}
	c := &p.CIEs[0]
	proto := replyClient(p)
	observed := natted(c.ClientNBMA, natObserved(p, proto))
	if pd.kind == pendProbe {
		e.probeOK(pd.peer)
		return
	}
	plen := c.EffectivePrefixLength(pd.target.BitLen())
	if c.PrefixLength == 0 { // "0 means host" (Cisco/FRR reading)
		plen = pd.target.BitLen()
	}
	pfx := netip.PrefixFrom(pd.target, plen).Masked()
	if !e.isNHS(in.from) {
		// Answered directly by a shortcut's peer: it speaks only for
		// itself and within the shortcut the request went through.
		pe, sc := e.peers.get(proto), e.shortcutFor(pd.target)
		if pe == nil || pe.nbma != in.from || pe.claimed != c.ClientNBMA {
			e.drop(DropWrongResponder)
			e.pendingFailed(pd, "reply names another peer")
			return
		}
		if direct {
			pfx = netip.PrefixFrom(pd.target, pd.target.BitLen())
		} else if sc == nil || pfx.Bits() < sc.prefix.Bits() {
			e.drop(DropPrefixTooWide)
			e.pendingFailed(pd, "reply prefix wider than the shortcut")
			return
		}
	}
	e.resolved(pd.target, pfx, proto, c.ClientNBMA, observed, e.claimedGroup(in), c.Holding())
}

// heldResponder reports whether a reply that came straight from its
// responder at from (not through the NHS asked) names a binding this node
// already holds at from: the responder answering for itself.
func (e *Engine) heldResponder(p *nhrp.Packet, from netip.Addr) bool {
	if len(p.CIEs) == 0 || p.CIEs[0].Code != nhrp.CIESuccess {
		return false
	}
	pe := e.peers.get(replyClient(p))
	return pe != nil && pe.nbma == from && pe.claimed == p.CIEs[0].ClientNBMA
}

// replyClient is the protocol address a resolution reply's first CIE binds:
// its client address, or the request's target when the CIE leaves it out.
func replyClient(p *nhrp.Packet) netip.Addr {
	if a := p.CIEs[0].ClientProto; a.IsValid() {
		return a
	}
	return p.DstProto
}

// replyVouched checks a positive reply this NHS is asked to relay: its
// client must be registered here from the NBMA the reply came from, with
// the NBMA the reply claims, and its prefix must lie within the route this
// NHS has towards that client for the resolved target (the client's own
// address: a host entry only).
func (e *Engine) replyVouched(in *inbound) (*peer, DropReason) {
	p := in.p
	c := &p.CIEs[0]
	pe := e.peers.get(c.ClientProto)
	if pe == nil || pe.kind != KindRegistered || pe.nbma != in.from {
		return nil, DropNotRegistered
	}
	if c.ClientNBMA.IsValid() && c.ClientNBMA != pe.claimed {
		return nil, DropClaimMismatch
	}
	target := p.DstProto
	bits := c.EffectivePrefixLength(target.BitLen())
	if c.PrefixLength == 0 {
		bits = target.BitLen()
	}
	limit := target.BitLen() // the client's own address
	if target != pe.proto {
		r, ok := e.route(target)
		if !ok || !r.ViaTunnel || r.NextHop != pe.proto {
			return nil, DropPrefixTooWide
		}
		limit = r.Prefix.Bits()
	}
	if bits < limit {
		return nil, DropPrefixTooWide
	}
	return pe, 0
}

// forwardReply sends a reply on along the reverse path.
func (e *Engine) forwardReply(in *inbound) {
	p := in.p
	if !e.cfg.Server {
		e.drop(DropUnexpected)
		return
	}
	if len(p.CIEs) > 0 && p.CIEs[0].Code == nhrp.CIESuccess && !e.isNHS(in.from) {
		// From the egress client (a reply from our own NHS was vouched
		// for by that NHS).
		pe, why := e.replyVouched(in)
		if pe == nil {
			e.drop(why)
			e.log.Info("refused to relay a resolution reply", zap.Stringer("reason", why),
				zap.Stringer("from", in.from), zap.Stringer("client", p.CIEs[0].ClientProto),
				zap.Stringer("claimed", p.CIEs[0].ClientNBMA), zap.Stringer("target", p.DstProto))
			return
		}
		e.noteResolver(pe, p.SrcProto, e.nextHop(p.SrcProto))
		if pe.observed.IsValid() {
			addNAT(p, pe.observed, pe.proto)
		}
	}
	if p.HopCount <= 1 {
		e.drop(DropHopCount)
		return
	}
	next := e.nextHop(p.SrcProto)
	if !next.IsValid() || next == in.from {
		e.drop(DropNoRoute)
		return
	}
	p.HopCount--
	e.appendTransit(p, nhrp.ExtensionReverseTransit)
	e.send(p, next)
}
