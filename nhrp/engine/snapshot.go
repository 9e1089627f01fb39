package engine

import (
	"iter"
	"net/netip"
	"slices"
	"time"
)

// CacheEntry is one cache entry as dmvpnctl shows it.
type CacheEntry struct {
	Proto    netip.Addr
	Kind     BindingKind
	NBMA     netip.Addr // direct GRE destination (zero: none)
	Bound    netip.Addr // neighbor entry programmed (zero: none)
	Claimed  netip.Addr
	Observed netip.Addr
	Unique   bool
	Group    string // NHRP group the peer claims ("" none)
	Expires  time.Time
	Since    time.Time // when the entry came into the cache (its EventPeerUp)
	Path     string    // resolved peers: direct path state
	Reason   string    // negative entries
}

// NHSStatus is one NHS as dmvpnctl shows it.
type NHSStatus struct {
	NBMA     netip.Addr
	Proto    netip.Addr
	Priority int
	State    NHSState
	Reason   string
	Since    time.Time
	Expires  time.Time  // registration expiry (when up)
	Public   netip.Addr // our post-NAT address as this NHS sees it
	Standby  bool       // not wanted: a preferred NHS serves
}

// ShortcutStatus is one shortcut as dmvpnctl shows it.
type ShortcutStatus struct {
	Prefix  netip.Prefix
	Via     netip.Addr
	NBMA    netip.Addr
	State   ShortcutState
	Reason  string
	Expires time.Time
}

func (s pathState) String() string {
	switch s {
	case pathNone:
		return "none"
	case pathValidating:
		return "validating"
	case pathUp:
		return "up"
	case pathDown:
		return "down"
	}
	return ""
}

// Peers yields the cache's entries, negative ones excluded, in no
// particular order and without copying the cache: for counting and
// comparing on the caller's goroutine (the engine must not be called
// while iterating).
func (e *Engine) Peers() iter.Seq[CacheEntry] {
	return func(yield func(CacheEntry) bool) {
		for pe := range e.peers.all() {
			if !yield(e.entry(pe)) {
				return
			}
		}
	}
}

// GroupPeers yields the entries of the peers that claim an NHRP group
// (those per-tunnel QoS looks at), in no order, building no entry for the
// others: a hub whose spokes claim none walks its cache without a copy.
func (e *Engine) GroupPeers() iter.Seq[CacheEntry] {
	return func(yield func(CacheEntry) bool) {
		for pe := range e.peers.all() {
			if pe.group != "" && !yield(e.entry(pe)) {
				return
			}
		}
	}
}

// PermanentBindings yields, for each entry of a permanent kind
// (BindingKind.Permanent) with a neighbor entry programmed, its protocol
// address and the programmed NBMA address. It builds no CacheEntry: the
// periodic resync walks it and asks PermanentBinding once per kernel
// entry.
func (e *Engine) PermanentBindings() iter.Seq2[netip.Addr, netip.Addr] {
	return func(yield func(netip.Addr, netip.Addr) bool) {
		for pe := range e.peers.all() {
			if pe.kind.Permanent() && pe.bound.IsValid() && !yield(pe.proto, pe.bound) {
				return
			}
		}
	}
}

// PermanentBinding is PermanentBindings' entry for proto: the programmed
// NBMA address, ok false when proto has no such entry.
func (e *Engine) PermanentBinding(proto netip.Addr) (netip.Addr, bool) {
	pe := e.peers.get(proto)
	if pe == nil || !pe.kind.Permanent() || !pe.bound.IsValid() {
		return netip.Addr{}, false
	}
	return pe.bound, true
}

// CacheLen is the number of cache entries, negative ones included: the
// length of Cache().
func (e *Engine) CacheLen() int { return e.peers.len() + len(e.negative) }

func (e *Engine) entry(pe *peer) CacheEntry {
	ce := CacheEntry{Proto: pe.proto, Kind: pe.kind, NBMA: pe.nbma, Bound: pe.bound, Claimed: pe.claimed,
		Observed: pe.observed, Unique: pe.unique, Group: pe.group, Expires: pe.expires(), Since: e.sinceTime(pe)}
	if pe.kind == KindResolved {
		ce.Path = pe.path.String()
	}
	return ce
}

// Cache returns the cache sorted by protocol address, negative entries
// included.
func (e *Engine) Cache() []CacheEntry {
	out := make([]CacheEntry, 0, e.peers.len()+len(e.negative))
	for pe := range e.peers.all() {
		out = append(out, e.entry(pe))
	}
	for _, n := range e.negative {
		out = append(out, CacheEntry{Proto: n.addr, Kind: KindNegative, Expires: n.expires, Reason: n.reason})
	}
	slices.SortFunc(out, func(a, b CacheEntry) int {
		if c := a.Proto.Compare(b.Proto); c != 0 {
			return c
		}
		return int(a.Kind) - int(b.Kind)
	})
	return out
}

// NHSs returns the servers in preference order.
func (e *Engine) NHSs() []NHSStatus {
	out := make([]NHSStatus, 0, len(e.nhss))
	for _, n := range e.nhss {
		st := NHSStatus{NBMA: n.cfg.NBMA, Proto: n.proto, Priority: n.cfg.Priority, State: n.state,
			Reason: n.reason, Since: n.since, Public: n.public, Standby: !n.wanted}
		if n.state == NHSUp {
			st.Expires = n.expires
		}
		out = append(out, st)
	}
	return out
}

// Shortcuts returns the shortcuts sorted by prefix.
func (e *Engine) Shortcuts() []ShortcutStatus {
	out := make([]ShortcutStatus, 0, len(e.shortcuts))
	for _, sc := range sortedShortcuts(e.shortcuts) {
		out = append(out, ShortcutStatus{Prefix: sc.prefix, Via: sc.via.proto, NBMA: sc.via.nbma, State: sc.state,
			Reason: sc.reason, Expires: sc.expires})
	}
	return out
}

// PublicNBMA returns this node's post-NAT NBMA address as its NHS reported
// it, or the zero address when it is not behind NAT.
func (e *Engine) PublicNBMA() netip.Addr { return e.myPublic }
