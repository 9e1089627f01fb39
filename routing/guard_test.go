package routing

import (
	"math/rand/v2"
	"net/netip"
	"testing"
)

// lpmMatch evaluates a prefix set the way GoBGP does: only the entries of
// the longest key containing p count.
func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func lpmMatch(entries []setEntry, p netip.Prefix) bool {
	best := -1
	for _, e := range entries {
		if e.Key.Bits() <= p.Bits() && e.Key.Contains(p.Addr()) && e.Key.Bits() > best {
			best = e.Key.Bits()
		}
	}
	for _, e := range entries {
		if e.Key.Bits() == best && e.Key.Contains(p.Addr()) && uint8(p.Bits()) >= e.Min && uint8(p.Bits()) <= e.Max {
			return true
		}
	}
	return false
}

// TestOverlapEntriesMatchOverlaps: under GoBGP's longest-key matching, the
// set built by overlapEntries matches a prefix exactly when it overlaps a
// protected prefix (random prefixes near the protected ones).
func TestOverlapEntriesMatchOverlaps(t *testing.T) {
	ps := []netip.Prefix{pfx("172.16.1.0/24"), pfx("172.16.1.5/32"), pfx("198.51.100.7/32"), pfx("172.16.0.0/22")}
	entries := overlapEntries(ps)
	r := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		base := ps[r.IntN(len(ps))].Addr().As4()
		base[3] ^= byte(r.IntN(256))
		if r.IntN(4) == 0 {
			base[2] ^= byte(r.IntN(8))
		}
		p := netip.PrefixFrom(netip.AddrFrom4(base), r.IntN(33)).Masked()
		if got, want := lpmMatch(entries, p), overlapsAny(p, ps); got != want {
			t.Fatalf("%s: set match %v, overlaps %v", p, got, want)
		}
	}
}

func TestGuardCheck(t *testing.T) {
	g := guard{
		tunnel:    pfx("10.0.0.0/24"),
		own:       []netip.Prefix{pfx("192.168.2.0/24")},
		protected: []netip.Prefix{pfx("198.51.100.1/32")},
	}
	nh := netip.MustParseAddr("10.0.0.3")
	tests := []struct {
		p       string
		nh      netip.Addr
		fromHub bool
		want    string
	}{
		{"192.168.3.0/24", nh, false, ""},
		{"0.0.0.0/0", nh, true, RejectDefault},
		{"0.0.0.0/1", nh, false, RejectTunnel},
		{"128.0.0.0/1", nh, false, RejectProtected},
		{"198.51.100.0/24", nh, false, RejectProtected},
		{"10.0.0.0/25", nh, false, RejectTunnel},
		{"192.168.2.0/25", nh, false, RejectOwnPrefix},
		{"192.168.2.0/24", nh, false, RejectOwnPrefix},
		{"192.168.3.0/24", netip.MustParseAddr("10.0.0.255"), false, RejectNextHop},
		{"192.168.3.0/24", netip.MustParseAddr("10.0.0.0"), false, RejectNextHop},
		{"192.168.3.0/24", netip.MustParseAddr("10.0.1.1"), false, RejectNextHop},
	}
	for _, tt := range tests {
		if got := g.check(pfx(tt.p), tt.nh, tt.fromHub); got != tt.want {
			t.Errorf("check(%s via %s) = %q, want %q", tt.p, tt.nh, got, tt.want)
		}
	}
	g.acceptDefault = true
	if got := g.check(pfx("0.0.0.0/0"), nh, true); got != "" {
		t.Errorf("default from a hub with acceptDefault: %q", got)
	}
	if got := g.check(pfx("0.0.0.0/0"), nh, false); got != RejectDefault {
		t.Errorf("default from a spoke with acceptDefault: %q", got)
	}
}
