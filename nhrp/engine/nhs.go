package engine

import (
	"net/netip"
	"slices"
	"time"

	"github.com/dmvpnd/dmvpnd/nhrp"
	"go.uber.org/zap"
)

// handleRegistration serves a Registration Request (§5.2.3) as NHS and
// answers it in place with a Registration Reply (§5.2.4). Each CIE is
// accepted or refused on its own, except that a packet that would leave
// its sender holding more than AddressesPerPeer addresses is refused as a
// whole.
func (e *Engine) handleRegistration(in *inbound) {
	p := in.p
	if !e.cfg.Server {
		e.drop(DropNotServer)
		return
	}
	if e.crossed(in) {
		e.drop(DropRetransmitAnswered)
		return
	}
	if perr := p.UnrecognizedCompulsory(); perr != nil {
		e.drop(DropUnknownExt)
		e.sendError(perr.Code, perr.Offset, p, in.raw, in.from)
		return
	}
	unique := p.Flags&nhrp.FlagRegistrationUnique != 0
	group := e.claimedGroup(in)
	overQuota := e.overQuota(in)
	var awaits []awaitedCIE
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
		code, why := nhrp.CIEAdminProhibited, DropAddressQuota
		if !overQuota {
			code, why = e.register(in, proto, claimed, unique, group, c)
		}
		c.Code = code
		if code == nhrp.CIESuccess {
			if pe := e.awaiting(proto); pe != nil {
				awaits = append(awaits, awaitedCIE{idx: i, pe: pe, claimed: claimed})
				continue // counted when the write's outcome is known
			}
			e.counters.inc(cRegAccepted)
			continue
		}
		e.counters.inc(cRegRefused)
		e.refused(why, proto, claimed, in)
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
	if len(awaits) > 0 {
		e.hold(p, in, awaits)
		return
	}
	e.send(p, in.from)
	e.noteAnswered(in, p)
}

// overQuota reports whether accepting every CIE of the registration in
// would leave its sender holding more than AddressesPerPeer addresses.
func (e *Engine) overQuota(in *inbound) bool {
	held := e.owned.get(in.owner)
	var seen []netip.Addr
	for i := range in.p.CIEs {
		c := &in.p.CIEs[i]
		proto := c.ClientProto
		if !proto.IsValid() {
			proto = in.p.SrcProto
		}
		if c.HoldingTime == 0 || slices.Contains(seen, proto) {
			continue
		}
		seen = append(seen, proto)
		if pe := e.peers.get(proto); pe != nil && pe.kind == KindRegistered && pe.owner == in.owner {
			continue // a refresh
		}
		held++
	}
	return held > e.cfg.AddressesPerPeer
}

// refused counts a refused CIE and reports it with both the claimed NBMA
// and the one the packet came from.
func (e *Engine) refused(why DropReason, proto, claimed netip.Addr, in *inbound) {
	e.drop(why)
	e.log.Info("registration refused", zap.Stringer("reason", why), zap.Stringer("proto", proto),
		zap.Stringer("claimed", claimed), zap.Stringer("from", in.from), zap.Stringer("outer", in.outer),
		zap.Stringer("peer", in.owner))
	e.emit(Event{Kind: EventRefused, Proto: proto, NBMA: in.from, Claimed: claimed, Observed: natted(in.from, in.outer),
		Drop: why, Reason: "registration refused: " + why.String()})
}

// register applies one registration CIE and returns its code and, for a
// refusal, why.
func (e *Engine) register(in *inbound, proto, claimed netip.Addr, unique bool, group string, c *nhrp.CIE) (nhrp.CIECode, DropReason) {
	from := in.from
	if e.cfg.IPsec && (claimed != in.nbma || in.p.SrcNBMA != in.nbma) {
		// The SA proves from (the inner address in tunnel mode, also when
		// from is an alias for it): a peer claims no other NBMA.
		return nhrp.CIEAdminProhibited, DropClaimMismatch
	}
	bits := proto.BitLen()
	if pl := int(c.PrefixLength); pl != 0 && pl != nhrp.HostPrefixLength && pl < bits {
		return nhrp.CIEAdminProhibited, DropNotAcceptable // only host registrations
	}
	if !e.acceptable(proto) || proto.BitLen() != e.cfg.Proto.BitLen() {
		return nhrp.CIEAdminProhibited, DropNotAcceptable
	}
	if e.reserved(proto) {
		return nhrp.CIEAdminProhibited, DropReserved
	}
	if e.cfg.IPsec {
		if pr := e.prot[from]; pr != nil && pr.bound != nil && !slices.Contains(pr.bound, proto) {
			return nhrp.CIEAdminProhibited, DropNotBound
		}
	}
	holding := min(c.Holding(), e.cfg.MaxHolding)
	if c.HoldingTime != 0 {
		c.HoldingTime = uint16(holding / time.Second) // tell the client what it got
	}
	ex := e.peers.get(proto)
	if ex != nil && ex.kind == KindRegistered {
		if ex.owner != in.owner && !e.ownerGone(ex.owner, in.owner) {
			// Only the peer that registered an address may refresh,
			// remove or (when unique) replace it. With IPsec that holds
			// for no-unique registrations too: the owner is an IKE
			// identity. Without IPsec nothing proves an NBMA (a spoofed
			// source is the spoke), so a no-unique registration may move
			// to another NBMA by a no-unique request (RFC 2332 5.2.1: a
			// unique request for an address registered elsewhere gets code
			// 14; Cisco's "no ip nhrp registration unique", for spokes
			// with a dynamic address).
			if e.cfg.IPsec || ex.unique || unique || holding == 0 {
				return nhrp.CIEUniqueAlreadyRegistered, DropOwned
			}
			e.removePeer(ex, "replaced: NBMA address changed")
			ex = nil
		}
		if ex != nil && ex.owner != in.owner { // ownerGone
			e.removePeer(ex, "replaced: its owner's SA is gone")
			ex = nil
		}
		if ex != nil && ex.claimed == claimed && ex.nbma == from {
			if holding == 0 { // deregistration
				e.removePeer(ex, "deregistered")
				return nhrp.CIESuccess, 0
			}
			ex.unique = unique
			ex.observed = natted(claimed, in.outer)
			e.setGroup(ex, group)
			e.setExpiry(ex, holding)
			return nhrp.CIESuccess, 0
		}
		if ex != nil {
			e.removePeer(ex, "replaced: NBMA address changed")
		}
	} else if ex != nil {
		e.removePeer(ex, "superseded by a registration")
	}
	if holding == 0 {
		return nhrp.CIESuccess, 0
	}
	pe := &peer{proto: proto, kind: KindRegistered, claimed: claimed, observed: natted(claimed, in.outer),
		nbma: from, unique: unique, group: group, owner: in.owner}
	if !e.addPeer(pe, "registered") {
		return nhrp.CIEInsufficientResources, DropCacheFull
	}
	e.setExpiry(pe, holding)
	return nhrp.CIESuccess, 0
}

// ownerGone reports whether a registration held by old may pass to cur
// as if cur owned it: with IPsec, the same identity whose old SA (old's
// post-NAT address) no longer proves anything, as when a NATed spoke's NAT
// address changed and the old SA is gone.
func (e *Engine) ownerGone(old, cur ownerKey) bool {
	return e.cfg.IPsec && old.identity != "" && old.identity == cur.identity && !e.ownerProven(old)
}

// reserved reports addresses no client may register: this NHS's own,
// another configured NHS's, and the tunnel prefix's network and (IPv4)
// broadcast addresses.
func (e *Engine) reserved(proto netip.Addr) bool {
	if proto == e.cfg.Proto {
		return true
	}
	for _, n := range e.nhss {
		if proto == n.cfg.Proto || proto == n.proto {
			return true
		}
	}
	if tp := e.cfg.TunnelPrefix; tp.IsValid() && tp.Bits() < tp.Addr().BitLen()-1 {
		if proto == tp.Masked().Addr() || proto.Is4() && proto == lastAddr(tp) {
			return true
		}
	}
	return false
}

func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3]) | host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// ClearRegistration removes the registration of the tunnel address addr,
// as "dmvpnctl clear nhrp registration ADDR" does: its neighbor entry
// goes, the clients that resolved it are purged, and the address is free
// for the next registration. It reports whether there was one.
func (e *Engine) ClearRegistration(addr netip.Addr) bool {
	e.now = e.cfg.Clock.Now()
	pe := e.peers.get(addr)
	if pe == nil || pe.kind != KindRegistered {
		return false
	}
	e.removePeer(pe, "cleared by operator")
	return true
}

func (e *Engine) acceptable(proto netip.Addr) bool {
	if tp := e.cfg.TunnelPrefix; tp.IsValid() && !tp.Contains(proto) {
		return false
	}
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
