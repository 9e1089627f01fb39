package engine

import (
	"net/netip"
)

// adoptedPath is a direct path a previous run of the controller proved and
// left programmed in the kernel (a neighbor entry proto -> nbma).
type adoptedPath struct {
	nbma netip.Addr
	t    *timer
}

// Adopt tells the engine that the kernel already maps proto to nbma: a
// neighbor entry a previous run programmed for a resolved peer whose direct
// path was up, and that traffic may be using right now.
//
// It changes nothing by itself. When the engine next resolves proto and
// learns the same direct NBMA address, the neighbor entry stays on that
// address while the direct path is validated again, instead of pointing at
// the NHS until the probe is answered: traffic over the adopted path keeps
// flowing and the entry is never rewritten to another address. The probe
// still decides: if it fails, the entry moves to the hub path as for any
// failed direct path, and the adoption is forgotten. An adoption that no
// resolution used within the holding time is forgotten too.
func (e *Engine) Adopt(proto, nbma netip.Addr) {
	e.now = e.cfg.Clock.Now()
	if !proto.IsValid() || !nbma.IsValid() || proto == e.cfg.Proto {
		return
	}
	if e.adopted == nil {
		e.adopted = map[netip.Addr]*adoptedPath{}
	}
	a := e.adopted[proto]
	if a == nil {
		if len(e.adopted) >= e.cfg.MaxCache {
			e.drop(DropCacheFull)
			return
		}
		a = &adoptedPath{}
		a.t = newTimer(func() { e.forgetAdopted(proto, a) })
		e.adopted[proto] = a
	}
	a.nbma = nbma
	e.after(a.t, e.cfg.HoldingTime)
}

func (e *Engine) forgetAdopted(proto netip.Addr, a *adoptedPath) {
	if e.adopted[proto] != a {
		return
	}
	e.cancel(a.t)
	delete(e.adopted, proto)
}

// adoptedDirect reports whether pe's neighbor entry stays on its direct
// address although the path is not proven yet: the kernel carried exactly
// that entry when the engine started.
func (e *Engine) adoptedDirect(pe *peer) bool {
	a := e.adopted[pe.proto]
	if a == nil || pe.kind != KindResolved || !pe.nbma.IsValid() || a.nbma != pe.nbma {
		return false
	}
	return pe.path == pathUnknown || pe.path == pathValidating
}

// settleAdopted forgets pe's adoption once its path is decided either way:
// up (the entry is direct anyway) or down (the hub path takes over and a
// retry validates from scratch).
func (e *Engine) settleAdopted(pe *peer) {
	if a := e.adopted[pe.proto]; a != nil && (pe.path == pathUp || pe.path == pathDown || pe.path == pathNone) {
		e.forgetAdopted(pe.proto, a)
	}
}

// Entry returns the cache entry for proto (not negative entries), for
// callers that need one entry without a snapshot of the whole cache.
func (e *Engine) Entry(proto netip.Addr) (CacheEntry, bool) {
	pe := e.peers.get(proto)
	if pe == nil {
		return CacheEntry{}, false
	}
	return e.entry(pe), true
}

// Negative reports whether a negative cache entry (a failed resolution) is
// held for addr.
func (e *Engine) Negative(addr netip.Addr) bool {
	_, ok := e.negative[addr]
	return ok
}
