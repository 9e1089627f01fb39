package engine

import (
	"net/netip"
	"slices"
)

// ClearShortcuts removes every shortcut, as an operator's "clear nhrp
// shortcuts" does: their routes go (ShortcutRemoved events), traffic falls
// back to the hub path, and the next redirect builds them again. Resolved
// peers left without shortcuts go with them. It returns how many shortcuts
// were removed.
func (e *Engine) ClearShortcuts() int {
	e.now = e.cfg.Clock.Now()
	scs := sortedShortcuts(e.shortcuts)
	for _, sc := range scs {
		e.removeShortcut(sc, "cleared by operator")
	}
	return len(scs)
}

// ClearCache drops the dynamic entries learnt from resolutions (resolved
// peers with their shortcuts, requesters) and the negative entries. Entries
// the node cannot re-learn on demand stay: its own NHSs and, on a hub, the
// registrations of its clients (they are refreshed by the clients
// themselves). It returns how many entries were removed.
func (e *Engine) ClearCache() int {
	e.now = e.cfg.Clock.Now()
	var drop []*peer
	for pe := range e.peers.all() {
		if pe.kind == KindResolved || pe.kind == KindRequester {
			drop = append(drop, pe)
		}
	}
	slices.SortFunc(drop, func(a, b *peer) int { return a.proto.Compare(b.proto) })
	n := 0
	for _, pe := range drop {
		if e.peers.get(pe.proto) == pe { // removing a shortcut may have removed it
			e.removePeer(pe, "cleared by operator")
			n++
		}
	}
	for addr := range e.negative {
		e.removeNegative(addr)
		n++
	}
	return n
}

// ClearResolved drops the entry for the protocol address addr if it was
// learnt from a resolution (a resolved peer, with its shortcuts, or a
// requester), as ClearCache does for all of them: the operator's per-peer
// clear. It returns whether an entry went and how many shortcuts with it;
// an NHS or a registration stays (ClearRegistration drops the latter).
func (e *Engine) ClearResolved(addr netip.Addr) (removed bool, shortcuts int) {
	e.now = e.cfg.Clock.Now()
	pe := e.peers.get(addr)
	if pe == nil || (pe.kind != KindResolved && pe.kind != KindRequester) {
		return false, 0
	}
	n := len(pe.shortcuts())
	e.removePeer(pe, "cleared by operator")
	return true, n
}
