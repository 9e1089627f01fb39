package engine

import "github.com/dmvpnd/dmvpnd/nhrp"

// handleErrorIndication matches an Error Indication (§5.2.7) to the
// request it reports on, or, as an NHS, passes it on towards its
// destination.
func (e *Engine) handleErrorIndication(in *inbound) {
	p := in.p
	e.counters.inc(cErrorsReceived)
	if p.DstProto != e.cfg.Proto {
		next := e.nextHop(p.DstProto)
		if !e.cfg.Server || !next.IsValid() || next == in.from || p.HopCount <= 1 {
			e.drop(DropUnexpected)
			return
		}
		p.HopCount--
		e.send(p, next)
		return
	}
	typ, _ := nhrp.PeekType(p.Payload)
	id, ok := nhrp.PeekRequestID(p.Payload)
	if !ok {
		e.drop(DropUnmatched)
		return
	}
	reason := "error indication: " + p.ErrorCode.String()
	switch typ {
	case nhrp.TypeRegistrationRequest:
		for _, n := range e.nhss {
			if n.pkt != nil && n.reqID == id && n.cfg.NBMA == in.from {
				e.cancel(n.timer)
				n.pkt = nil
				n.refusal = e.retry().Next(n.refusal)
				n.failed = true
				e.setNHSState(n, NHSDown, reason)
				e.after(n.timer, n.refusal)
				e.rebindResolved()
				e.recomputeWanted()
				return
			}
		}
	case nhrp.TypeResolutionRequest, nhrp.TypePurgeRequest:
		if pd := e.pending[id]; pd != nil && pd.to == in.from {
			e.finishPending(pd)
			e.pendingFailed(pd, reason)
			return
		}
	}
	e.drop(DropUnmatched)
}
