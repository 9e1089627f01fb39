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
