package routing

import (
	"net/netip"
	"slices"
)

// Reasons a learned route is rejected, as counted by the FIB and named in
// the import policy's statements.
const (
	RejectDefault       = "default-route"
	RejectTunnel        = "tunnel-prefix"
	RejectProtected     = "covers-nbma"
	RejectOwnPrefix     = "own-prefix"
	RejectNextHop       = "next-hop"
	RejectNotAccepted   = "not-accepted"
	RejectMaxPrefixDrop = "max-prefix"
	// RejectForeignNextHop: on a hub, a spoke's path whose next hop is not
	// the spoke's own session address.
	RejectForeignNextHop = "foreign-next-hop"
)

// guard holds the rejections that cannot be turned off. The import policy
// applies them inside GoBGP (so rejected routes are neither installed nor
// reflected) and the FIB applies them again to every best path before it
// becomes a kernel route, so that a policy gap or a protected address
// learned after the route was accepted never reaches the kernel.
type guard struct {
	tunnel        netip.Prefix
	acceptDefault bool
	own           []netip.Prefix // LAN prefixes (not summaries)
	protected     []netip.Prefix
	// spokes is the hub's dynamic range (invalid on a spoke): a path from
	// a neighbor in it that is not a configured hub is a spoke's.
	spokes netip.Prefix
}

// reason returns why the path to p via nh from neighbor from (a hub:
// fromHub) must not be used, or "": check, then foreignNextHop.
func (g guard) reason(p netip.Prefix, nh, from netip.Addr, fromHub bool) string {
	if why := g.check(p, nh, fromHub); why != "" {
		return why
	}
	if g.foreignNextHop(nh, from, fromHub) {
		return RejectForeignNextHop
	}
	return ""
}

// importReason classifies a path GoBGP's import policy rejected, in the
// policy's order: the built-in rejections, a prefix outside accept, a
// spoke's foreign next hop; anything else did not match an accept
// statement either.
func (g guard) importReason(p netip.Prefix, nh, from netip.Addr, fromHub bool, accept []PrefixRange) string {
	if why := g.check(p, nh, fromHub); why != "" {
		return why
	}
	if !slices.ContainsFunc(accept, func(r PrefixRange) bool { return r.Contains(p) }) {
		return RejectNotAccepted
	}
	if g.foreignNextHop(nh, from, fromHub) {
		return RejectForeignNextHop
	}
	return RejectNotAccepted
}

// foreignNextHop: on a hub, a spoke's path must have the spoke's own
// session address as next hop; a spoke cannot point a route at another
// node.
func (g guard) foreignNextHop(nh, from netip.Addr, fromHub bool) bool {
	return g.spokes.IsValid() && from.IsValid() && !fromHub && g.spokes.Contains(from) && nh != from
}

// check returns why the route to p via nh must not be installed, or "".
// fromHub says the path came from a hub (for the default route).
func (g guard) check(p netip.Prefix, nh netip.Addr, fromHub bool) string {
	switch {
	case p.Bits() == 0 && !(g.acceptDefault && fromHub):
		return RejectDefault
	case p.Bits() == 0:
		if !g.usableNextHop(nh) {
			return RejectNextHop
		}
		return "" // explicitly allowed: it covers everything by definition
	case g.tunnel.IsValid() && p.Overlaps(g.tunnel):
		return RejectTunnel
	case overlapsAny(p, g.protected):
		return RejectProtected
	case insideAny(p, g.own):
		return RejectOwnPrefix
	case !g.usableNextHop(nh):
		return RejectNextHop
	}
	return ""
}

// usableNextHop: inside the tunnel prefix, and neither its network nor its
// broadcast address.
func (g guard) usableNextHop(nh netip.Addr) bool {
	if !nh.Is4() || !g.tunnel.IsValid() || !g.tunnel.Contains(nh) {
		return false
	}
	return nh != g.tunnel.Addr() && nh != broadcast(g.tunnel)
}

func broadcast(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As4()
	for i := p.Bits(); i < 32; i++ {
		a[i/8] |= 0x80 >> (i % 8)
	}
	return netip.AddrFrom4(a)
}

func overlapsAny(p netip.Prefix, set []netip.Prefix) bool {
	return slices.ContainsFunc(set, p.Overlaps)
}

// insideAny: p is one of set or more specific than one of them.
func insideAny(p netip.Prefix, set []netip.Prefix) bool {
	return slices.ContainsFunc(set, func(q netip.Prefix) bool { return p.Bits() >= q.Bits() && q.Contains(p.Addr()) })
}

// setEntry is one entry of a GoBGP prefix set: Key with a mask length range.
type setEntry struct {
	Key      netip.Prefix
	Min, Max uint8
}

// overlapEntries returns a GoBGP prefix set that matches exactly the
// prefixes overlapping one of ps (covering it, equal to it or inside it).
//
// GoBGP matches a path against the entries of the longest key that
// contains the path's prefix only, so the entries are built for that: each
// prefix q contributes q itself with lengths q.Bits()..32 and every
// covering key q/l with exactly length l. A key that lies inside another
// protected prefix gets lengths up to 32, so that a path inside that prefix
// whose longest containing key happens to be a covering key of a third
// prefix still matches.
func overlapEntries(ps []netip.Prefix) []setEntry {
	keys := map[netip.Prefix]setEntry{}
	for _, q := range ps {
		q = q.Masked()
		for l := 0; l < q.Bits(); l++ {
			k := netip.PrefixFrom(q.Addr(), l).Masked()
			if _, ok := keys[k]; !ok {
				keys[k] = setEntry{Key: k, Min: uint8(l), Max: uint8(l)}
			}
		}
		keys[q] = setEntry{Key: q, Min: uint8(q.Bits()), Max: 32}
	}
	out := make([]setEntry, 0, len(keys))
	for k, e := range keys {
		if insideAny(k, ps) {
			e.Max = 32
		}
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b setEntry) int { return comparePrefix(a.Key, b.Key) })
	return out
}

// insideEntries matches the prefixes equal to or more specific than one of ps.
func insideEntries(ps []netip.Prefix) []setEntry {
	out := make([]setEntry, 0, len(ps))
	for _, q := range sortPrefixes(slices.Clone(ps)) {
		out = append(out, setEntry{Key: q.Masked(), Min: uint8(q.Bits()), Max: 32})
	}
	return out
}
