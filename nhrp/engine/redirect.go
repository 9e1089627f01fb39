package engine

import (
	"net/netip"

	"github.com/dmvpnd/dmvpnd/nhrp"
)

// indicationBytes is how much of the data packet a Traffic Indication
// carries (the DMVPN draft asks for at least 64 octets).
const indicationBytes = 128

type flowKey struct{ src, dst netip.Addr }

// Hairpin handles a data packet that entered on the tunnel and leaves on it
// again (NHS role, Phase 3): the packet's source spoke gets a Traffic
// Indication about the packet's destination, at most once per
// Config.IndicationEvery per (source, destination) flow. pkt is the packet
// from its IP header on (the controller dispatches by inbound interface).
func (e *Engine) Hairpin(pkt []byte) {
	e.now = e.cfg.Clock.Now()
	h, ok := nhrp.ParseIPHeader(pkt)
	if !ok {
		e.drop(DropBadHairpin)
		return
	}
	src, dst := h.Src, h.Dst
	k := flowKey{src, dst}
	if last, ok := e.flows[k]; ok && e.now.Sub(last) < e.cfg.IndicationEvery {
		e.drop(DropIndicationRate)
		return
	}
	to := e.spokeFor(src)
	if !to.IsValid() {
		e.drop(DropNoRoute)
		return
	}
	if len(e.flows) >= e.cfg.MaxFlows {
		for f, t := range e.flows {
			if e.now.Sub(t) >= e.cfg.IndicationEvery {
				delete(e.flows, f)
			}
		}
		if len(e.flows) >= e.cfg.MaxFlows {
			e.drop(DropFlowsFull)
			return
		}
	}
	e.flows[k] = e.now
	if len(pkt) > indicationBytes {
		pkt = pkt[:indicationBytes]
	}
	// Destination protocol address: the data packet's source, the node the
	// indication is for (as FRR nhrpd sends it; the receiver reads the
	// destination to resolve from the embedded packet).
	p := nhrp.NewTrafficIndication(e.cfg.NBMA, e.cfg.Proto, src, pkt)
	e.counters.inc(cIndicationsSent)
	e.send(p, to)
}

// spokeFor finds the NBMA address of the client behind which src lives.
func (e *Engine) spokeFor(src netip.Addr) netip.Addr {
	if pe := e.peers.get(src); pe != nil && pe.kind == KindRegistered {
		return pe.nbma
	}
	if r, ok := e.route(src); ok && r.ViaTunnel && r.NextHop.IsValid() {
		if pe := e.peers.get(r.NextHop); pe != nil && pe.kind == KindRegistered {
			return pe.nbma
		}
	}
	return netip.Addr{}
}

// handleTrafficIndication is the spoke side of Phase 3: if the indication
// comes from a configured NHS and this node is the ingress for the embedded packet (its source is not reached over the
// tunnel), resolve the destination.
func (e *Engine) handleTrafficIndication(in *inbound) {
	if !e.isNHS(in.from) {
		// Only our NHSs see our hairpinned traffic (with IPsec, over an SA
		// proving the NHS's address).
		e.drop(DropNotNHS)
		return
	}
	e.counters.inc(cIndicationsRecv)
	h, ok := nhrp.ParseIPHeader(in.p.Payload)
	if !ok {
		e.drop(DropMalformed)
		return
	}
	src, dst := h.Src, h.Dst
	if r, ok := e.route(src); !ok || r.ViaTunnel {
		e.drop(DropNotIngress)
		return
	}
	if sc := e.shortcutFor(dst); sc != nil {
		sc.via.extra.lastUsed = e.now
		return
	}
	e.resolve(dst)
}
