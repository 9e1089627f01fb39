package engine

import (
	"net/netip"

	"github.com/dmvpnd/dmvpnd/nhrp"
)

// handleRegistration serves a Registration Request (§5.2.3) as NHS and
// answers it in place with a Registration Reply (§5.2.4).
func (e *Engine) handleRegistration(in *inbound) {
	p := in.p
	if !e.cfg.Server {
		e.drop(DropNotServer)
		return
	}
	if perr := p.UnrecognizedCompulsory(); perr != nil {
		e.drop(DropUnknownExt)
		e.sendError(perr.Code, perr.Offset, p, in.raw, in.from)
		return
	}
	unique := p.Flags&nhrp.FlagRegistrationUnique != 0
	for i := range p.CIEs {
		c := &p.CIEs[i]
		proto := c.ClientProto
		if !proto.IsValid() {
			proto = p.SrcProto
		}
		claimed := c.ClientNBMA
		if !claimed.IsValid() {
			claimed = p.SrcNBMA
		}
		c.Code = e.register(proto, claimed, in.from, in.outer, unique, c)
		if c.Code == nhrp.CIESuccess {
			e.counters.inc(cRegAccepted)
		} else {
			e.counters.inc(cRegRefused)
		}
	}
	p.Type = nhrp.TypeRegistrationReply
	p.HopCount = e.cfg.HopCount
	// The destination protocol address names this NHS: a spoke with a
	// dynamic NHS sent its own address there, and FRR nhrpd learns the
	// NHS's protocol address from the reply's destination (not from the
	// Responder Address extension), as FRR's own hub answers.
	if p.DstProto.BitLen() == e.cfg.Proto.BitLen() {
		p.DstProto = e.cfg.Proto
	}
	e.fillResponder(p)
	if obs := natted(p.SrcNBMA, in.outer); obs.IsValid() {
		addNAT(p, obs, p.SrcProto)
	}
	e.send(p, in.from)
}

// register applies one registration CIE and returns its code.
func (e *Engine) register(proto, claimed, from, outer netip.Addr, unique bool, c *nhrp.CIE) nhrp.CIECode {
	bits := proto.BitLen()
	if pl := int(c.PrefixLength); pl != 0 && pl != nhrp.HostPrefixLength && pl < bits {
		return nhrp.CIEAdminProhibited // only host registrations
	}
	if !e.acceptable(proto) || proto.BitLen() != e.cfg.Proto.BitLen() {
		return nhrp.CIEAdminProhibited
	}
	holding := c.Holding()
	ex := e.peers[proto]
	if ex != nil && ex.kind == KindRegistered {
		if ex.claimed == claimed && ex.nbma == from {
			if holding == 0 { // deregistration
				e.removePeer(ex, "deregistered")
				return nhrp.CIESuccess
			}
			ex.unique = unique
			ex.observed = natted(claimed, outer)
			e.setExpiry(ex, holding)
			return nhrp.CIESuccess
		}
		if ex.unique || unique {
			return nhrp.CIEUniqueAlreadyRegistered
		}
		e.removePeer(ex, "replaced: NBMA address changed")
	} else if ex != nil {
		e.removePeer(ex, "superseded by a registration")
	}
	if holding == 0 {
		return nhrp.CIESuccess
	}
	pe := &peer{proto: proto, kind: KindRegistered, claimed: claimed, observed: natted(claimed, outer),
		nbma: from, unique: unique}
	if !e.addPeer(pe, "registered") {
		return nhrp.CIEInsufficientResources
	}
	e.setExpiry(pe, holding)
	return nhrp.CIESuccess
}

func (e *Engine) acceptable(proto netip.Addr) bool {
	if len(e.cfg.AcceptPrefixes) == 0 {
		return true
	}
	for _, pfx := range e.cfg.AcceptPrefixes {
		if pfx.Contains(proto) {
			return true
		}
	}
	return false
}

// ownCIE describes this node as a client entry.
func (e *Engine) ownCIE() nhrp.CIE {
	return nhrp.CIE{PrefixLength: nhrp.HostPrefixLength, MTU: e.cfg.MTU, HoldingTime: e.cfg.holdingSeconds(),
		ClientNBMA: e.cfg.NBMA, ClientProto: e.cfg.Proto}
}

// fillResponder sets the Responder Address extension of a reply to this
// node (§5.3.1) when the request carried one.
func (e *Engine) fillResponder(p *nhrp.Packet) {
	if ext := p.Extension(nhrp.ExtensionResponderAddress); ext != nil && !ext.Opaque {
		ext.CIEs = append(ext.CIEs[:0], e.ownCIE())
	}
}
