package engine

import (
	"net/netip"
	"time"
)

type pendingKind uint8

const (
	pendResolve pendingKind = iota + 1 // resolution for a destination
	pendProbe                          // direct-path probe of a peer
	pendPurge                          // purge request awaiting its reply
)

// pending is an outstanding request. Retransmissions resend the same bytes,
// so the request id never changes (§5.2.1: a retransmitted request keeps
// its id).
type pending struct {
	id     uint32
	kind   pendingKind
	target netip.Addr // resolution destination (probe: the peer)
	to     netip.Addr // NBMA the request went to
	pkt    []byte
	tries  int
	max    int
	wait   time.Duration
	t      *timer
	peer   *peer // probes
}

// track registers pd, whose first copy b has just been sent.
func (e *Engine) track(pd *pending, b []byte) {
	pd.pkt = append([]byte(nil), b...)
	pd.tries = 1
	pd.t = newTimer(func() { e.pendingTimer(pd) })
	e.pending[pd.id] = pd
	if pd.kind == pendResolve {
		e.resolving[pd.target] = pd
	}
	e.after(pd.t, pd.wait)
}

func (e *Engine) pendingTimer(pd *pending) {
	if pd.tries >= pd.max {
		e.finishPending(pd)
		e.pendingFailed(pd, "no reply")
		return
	}
	pd.tries++
	if pd.kind == pendResolve {
		e.counters.inc(cResolutionRetrans)
	}
	pd.wait = e.retry().Next(pd.wait)
	e.write(pd.pkt, pd.to)
	e.after(pd.t, pd.wait)
}

// finishPending forgets pd.
func (e *Engine) finishPending(pd *pending) {
	e.cancel(pd.t)
	if e.pending[pd.id] == pd {
		delete(e.pending, pd.id)
	}
	if pd.kind == pendResolve && e.resolving[pd.target] == pd {
		delete(e.resolving, pd.target)
	}
}

// pendingFailed handles a request that timed out or was refused.
func (e *Engine) pendingFailed(pd *pending, reason string) {
	switch pd.kind {
	case pendResolve:
		e.counters.inc(cResolutionTimeout)
		e.addNegative(pd.target, reason)
		if sc := e.shortcutFor(pd.target); sc != nil && sc.target == pd.target && sc.refreshing {
			sc.refreshing = false
		}
	case pendProbe:
		e.probeFailed(pd.peer, reason)
	}
}

func (e *Engine) pendingFull() bool {
	if len(e.pending) >= e.cfg.MaxPending {
		e.drop(DropPendingFull)
		return true
	}
	return false
}
