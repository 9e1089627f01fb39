package engine

import "net/netip"

// Protected tells the engine that an IPsec SA with the NBMA address nbma
// has just been established. With Config.IPsec the dataplane drops what
// the engine sends to a peer before its SA is up, so an unanswered
// Registration Request to that NHS waits for its next retransmission,
// which backs off up to RetryMax (64 s by default) while the SA is being
// negotiated. Protected resends it now and restarts its backoff. A server
// that refused us, or one we are registered with, is left alone.
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
}
