package engine

import (
	"net/netip"
	"slices"
)

// Protected tells the engine that an IPsec SA with the NBMA address nbma
// has just been established. With Config.IPsec the dataplane drops what
// the engine sends to a peer before its SA is up, so whatever was sent to
// nbma meanwhile waits for its next retry, which backs off while the SA is
// negotiated. Protected sends it now:
//   - an unanswered Registration Request to the NHS at nbma is resent and
//     its backoff (up to RetryMax, 64 s by default) restarts; a server that
//     refused us, or one we are registered with, is left alone;
//   - the direct path to a resolved peer at nbma that is not confirmed yet
//     is probed now: a probe in flight (lost) is replaced, and a path that
//     gave up (down, retrying after PathRetryMin or more) is retried.
//
// Each call sends at most one packet to each such NHS or peer and restarts
// its retry timer (RetryMin, then doubling; the probe timeout), so a burst
// of calls cannot become a storm. Nothing is sent for other addresses.
func (e *Engine) Protected(nbma netip.Addr) {
	e.now = e.cfg.Clock.Now()
	for _, n := range e.nhss {
		if !n.wanted || n.pkt == nil || n.state == NHSUp || n.cfg.NBMA != nbma {
			continue
		}
		e.cancel(n.timer)
		n.backoff = e.cfg.RetryMin
		n.tries++
		e.write(n.pkt, n.cfg.NBMA)
		e.after(n.timer, n.backoff)
	}
	var peers []*peer
	for _, pe := range e.peers {
		if pe.nbma == nbma && pe.kind == KindResolved && pe.pc != nil &&
			(pe.path == pathValidating || pe.path == pathDown) {
			peers = append(peers, pe)
		}
	}
	slices.SortFunc(peers, func(a, b *peer) int { return a.proto.Compare(b.proto) })
	for _, pe := range peers {
		c := pe.pc
		if pe.path == pathDown {
			e.cancel(c.t)
			e.pathTimer(pe)
			continue
		}
		if c.probe != nil {
			e.finishPending(c.probe)
			c.probe = nil
		}
		e.sendProbe(pe)
	}
}
