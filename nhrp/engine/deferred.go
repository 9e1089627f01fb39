package engine

import (
	"errors"
	"net/netip"

	"github.com/dmvpnd/dmvpnd/nhrp"
	"go.uber.org/zap"
)

// ErrBindDeferred is what a Binder returns from Bind when it has queued the
// neighbor write instead of doing it: the controller writes a whole batch
// of packets' entries in one kernel transaction. The engine then treats the
// entry as bound, holds every Registration Reply whose success depends on
// it, and learns the outcome from CommitBindings, which the caller must
// invoke before anything else once the batch is written.
var ErrBindDeferred = errors.New("engine: neighbor write deferred")

// errNoOutcome stands for an outcome CommitBindings was not given.
var errNoOutcome = errors.New("engine: no outcome reported for a deferred neighbor write")

// heldReply is a Registration Reply waiting for the outcome of the
// neighbor writes its accepted CIEs depend on.
type heldReply struct {
	p      *nhrp.Packet
	in     inbound // p and raw are not used
	awaits []awaitedCIE
}

// awaitedCIE is an accepted CIE of a held reply and the entry it needs.
type awaitedCIE struct {
	idx     int
	pe      *peer
	claimed netip.Addr
}

// deferBind records that pe's neighbor write was queued.
func (e *Engine) deferBind(pe *peer) {
	pe.deferred = true
	e.deferred = append(e.deferred, pe)
}

// awaiting reports whether the accepted registration of proto waits for a
// deferred neighbor write (a new entry, or a refresh of an entry whose
// write is still queued) and returns the entry.
func (e *Engine) awaiting(proto netip.Addr) *peer {
	if pe := e.peers.get(proto); pe != nil && pe.kind == KindRegistered && pe.deferred {
		return pe
	}
	return nil
}

// hold keeps the reply p to in until CommitBindings.
func (e *Engine) hold(p *nhrp.Packet, in *inbound, awaits []awaitedCIE) {
	h := heldReply{p: p.Clone(), in: *in, awaits: awaits}
	h.in.p, h.in.raw = nil, nil
	e.held = append(e.held, h)
}

// CommitBindings reports the outcomes of the neighbor writes deferred
// since the last call (see ErrBindDeferred): errs[i] is that of the i-th
// deferred Bind, nil when the entry exists. An entry the kernel refused is
// removed from the cache as if it had never been accepted; then every held
// Registration Reply is sent, in arrival order, with CIE code 5
// (insufficient resources) for each registration whose entry was refused.
func (e *Engine) CommitBindings(errs []error) {
	e.now = e.cfg.Clock.Now()
	deferred := e.deferred
	e.deferred = nil
	for i, pe := range deferred {
		pe.deferred = false
		err := errNoOutcome
		if i < len(errs) {
			err = errs[i]
		}
		if err == nil {
			continue
		}
		pe.bindRefused = true
		e.counters.inc(cBindErrors)
		e.log.Warn("binder refused neighbor entry", zap.Stringer("proto", pe.proto),
			zap.Stringer("nbma", pe.bound), zap.Error(err))
		e.removePeer(pe, "kernel refused neighbor entry")
	}
	held := e.held
	e.held = nil
	for _, h := range held {
		e.release(h)
	}
}

// release sends a held reply with the final code of each awaited CIE.
func (e *Engine) release(h heldReply) {
	for _, a := range h.awaits {
		c := &h.p.CIEs[a.idx]
		if !a.pe.bindRefused {
			e.counters.inc(cRegAccepted)
			continue
		}
		c.Code = nhrp.CIEInsufficientResources
		e.counters.inc(cRegRefused)
		e.refused(DropCacheFull, a.pe.proto, a.claimed, &h.in)
	}
	e.send(h.p, h.in.from)
	e.noteAnswered(&h.in, h.p)
}
