package engine

import (
	"iter"
	"net/netip"
)

// peerMap is the cache, keyed by protocol address. An IPv4 address (the
// usual tunnel) is keyed by its four bytes: a hub holds one entry per
// spoke, and a map[[4]byte]*peer slot is 16 B where a map[netip.Addr]*peer
// one is 32. The zero value is empty.
type peerMap struct {
	v4    map[[4]byte]*peer
	other map[netip.Addr]*peer
}

// get returns the entry of a, nil when there is none.
func (m *peerMap) get(a netip.Addr) *peer {
	if a.Is4() {
		return m.v4[a.As4()]
	}
	return m.other[a]
}

// set makes pe the entry of pe.proto.
func (m *peerMap) set(pe *peer) {
	if pe.proto.Is4() {
		if m.v4 == nil {
			m.v4 = map[[4]byte]*peer{}
		}
		m.v4[pe.proto.As4()] = pe
		return
	}
	if m.other == nil {
		m.other = map[netip.Addr]*peer{}
	}
	m.other[pe.proto] = pe
}

// del removes the entry of a, if any.
func (m *peerMap) del(a netip.Addr) {
	if a.Is4() {
		delete(m.v4, a.As4())
		return
	}
	delete(m.other, a)
}

func (m *peerMap) len() int { return len(m.v4) + len(m.other) }

// all yields every entry, in no particular order. The map must not change
// while iterating, except for deleting the entry just yielded.
func (m *peerMap) all() iter.Seq[*peer] {
	return func(yield func(*peer) bool) {
		for _, pe := range m.v4 {
			if !yield(pe) {
				return
			}
		}
		for _, pe := range m.other {
			if !yield(pe) {
				return
			}
		}
	}
}
