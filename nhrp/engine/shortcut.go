package engine

import (
	"net/netip"
	"slices"
	"time"
)

// ShortcutState is the state of a shortcut route "Prefix via peer".
type ShortcutState uint8

// Shortcut states. The controller installs the route only in ShortcutUp.
const (
	// ShortcutValidating: resolved, direct path being proven; traffic
	// stays on the hub path.
	ShortcutValidating ShortcutState = iota + 1
	// ShortcutUp: usable; install the route.
	ShortcutUp
	// ShortcutDown: the direct path failed; traffic is back on the hub
	// path and the direct path is retried with backoff.
	ShortcutDown
	// ShortcutHubOnly: no direct path can exist (both ends behind
	// different NATs); traffic stays on the hub path.
	ShortcutHubOnly
	// ShortcutRemoved: gone (idle, expired or purged).
	ShortcutRemoved
)

func (s ShortcutState) String() string {
	switch s {
	case ShortcutValidating:
		return "validating"
	case ShortcutUp:
		return "up"
	case ShortcutDown:
		return "down"
	case ShortcutHubOnly:
		return "hub-only"
	case ShortcutRemoved:
		return "removed"
	}
	return "unknown"
}

func shortcutStateFor(s pathState) ShortcutState {
	switch s {
	case pathUp:
		return ShortcutUp
	case pathDown:
		return ShortcutDown
	case pathNone:
		return ShortcutHubOnly
	}
	return ShortcutValidating
}

// shortcut is a resolved prefix reached via a peer.
type shortcut struct {
	prefix      netip.Prefix
	target      netip.Addr // the address that was resolved
	via         *peer
	state       ShortcutState
	reason      string
	holding     time.Duration
	expires     time.Time
	lastRefresh time.Time
	refreshing  bool
	t           *timer
}

// shortcutFor returns the most specific shortcut covering dst.
func (e *Engine) shortcutFor(dst netip.Addr) *shortcut {
	for bits := dst.BitLen(); bits >= 0; bits-- {
		pfx, _ := dst.Prefix(bits)
		if sc := e.shortcuts[pfx]; sc != nil {
			return sc
		}
	}
	return nil
}

// resolved records the answer to a resolution of target: the peer that
// owns pfx and the shortcut towards it.
func (e *Engine) resolved(target netip.Addr, pfx netip.Prefix, proto, claimed, observed netip.Addr, group string, holding time.Duration) {
	if proto == e.cfg.Proto {
		return
	}
	if holding <= 0 {
		holding = e.cfg.HoldingTime
	}
	pe := e.peers.get(proto)
	switch {
	case pe == nil:
		pe = &peer{proto: proto, kind: KindResolved, claimed: claimed, observed: observed,
			nbma: e.directNBMA(claimed, observed), group: group, extra: &peerExtra{shortcuts: map[netip.Prefix]*shortcut{}}}
		if !e.addPeer(pe, "resolved") {
			return
		}
		e.startPath(pe)
	case pe.kind == KindRequester:
		nbma := e.directNBMA(claimed, observed)
		pe.heard = pe.heard && pe.nbma == nbma
		pe.kind, pe.claimed, pe.observed = KindResolved, claimed, observed
		pe.nbma = nbma
		pe.more().shortcuts = map[netip.Prefix]*shortcut{}
		e.setGroup(pe, group)
		e.startPath(pe)
	case pe.kind == KindResolved:
		e.setGroup(pe, group)
		if pe.claimed != claimed || pe.observed != observed {
			pe.claimed, pe.observed = claimed, observed
			pe.nbma, pe.heard = e.directNBMA(claimed, observed), false
			e.stopPath(pe)
			pe.path = pathUnknown
			e.startPath(pe)
		}
	default:
		// An NHS or a client we serve: traffic goes there already.
		return
	}
	// Never shorter than the route that points back into the tunnel.
	if r, ok := e.route(target); ok && r.ViaTunnel && r.Prefix.Bits() > pfx.Bits() {
		pfx = netip.PrefixFrom(target, r.Prefix.Bits()).Masked()
	}
	sc := e.shortcuts[pfx]
	if sc != nil && sc.via != pe {
		e.removeShortcut(sc, "replaced by another peer")
		sc = nil
	}
	if sc == nil {
		if len(e.shortcuts) >= e.cfg.MaxCache {
			e.drop(DropCacheFull)
			return
		}
		sc = &shortcut{prefix: pfx, target: target, via: pe}
		sc.t = newTimer(func() { e.shortcutTimer(sc) })
		e.shortcuts[pfx] = sc
		pe.extra.shortcuts[pfx] = sc
		e.setShortcut(sc, shortcutStateFor(pe.path), "resolved")
	}
	sc.holding = holding
	sc.expires = e.now.Add(holding)
	sc.lastRefresh = e.now
	sc.refreshing = false
	e.schedule(sc.t, e.now.Add(holding*2/3))
	e.setExpiry(pe, holding)
}

// shortcutTimer fires at 2/3 of the holding time (refresh if the peer was
// used since the last refresh) and at expiry (remove: idle).
func (e *Engine) shortcutTimer(sc *shortcut) {
	if e.shortcuts[sc.prefix] != sc {
		return
	}
	if !e.now.Before(sc.expires) {
		e.removeShortcut(sc, "expired: idle")
		return
	}
	if sc.via.extra.lastUsed.After(sc.lastRefresh) && !sc.refreshing {
		sc.refreshing = true
		e.resolve(sc.target)
	}
	e.schedule(sc.t, sc.expires)
}

func (e *Engine) setShortcut(sc *shortcut, s ShortcutState, reason string) {
	if sc.state == s {
		return
	}
	sc.state, sc.reason = s, reason
	e.emit(Event{Kind: EventShortcut, Prefix: sc.prefix, Via: sc.via.proto, Proto: sc.via.proto, NBMA: sc.via.nbma,
		Shortcut: s, Reason: reason})
}

// removeShortcut drops sc; a resolved peer left without shortcuts goes too.
func (e *Engine) removeShortcut(sc *shortcut, reason string) {
	if e.shortcuts[sc.prefix] != sc {
		return
	}
	delete(e.shortcuts, sc.prefix)
	delete(sc.via.extra.shortcuts, sc.prefix)
	e.cancel(sc.t)
	e.setShortcut(sc, ShortcutRemoved, reason)
	if pe := sc.via; len(pe.shortcuts()) == 0 && pe.kind == KindResolved && e.peers.get(pe.proto) == pe {
		e.removePeer(pe, reason)
	}
}

func sortedShortcuts(m map[netip.Prefix]*shortcut) []*shortcut {
	out := make([]*shortcut, 0, len(m))
	for _, sc := range m {
		out = append(out, sc)
	}
	slices.SortFunc(out, func(a, b *shortcut) int { return comparePrefix(a.prefix, b.prefix) })
	return out
}

func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}
