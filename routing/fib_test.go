package routing

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/zap"
)

type recSink struct{ sets [][]Route }

func (s *recSink) SetRoutes(rs []Route) { s.sets = append(s.sets, slices.Clone(rs)) }

func (s *recSink) last() string {
	if len(s.sets) == 0 {
		return "<never called>"
	}
	var b strings.Builder
	for _, r := range s.sets[len(s.sets)-1] {
		b.WriteString(r.String() + "\n")
	}
	return b.String()
}

func upd(p, nh, from string) PathUpdate {
	return PathUpdate{Prefix: netip.MustParsePrefix(p), NextHop: netip.MustParseAddr(nh), From: netip.MustParseAddr(from)}
}

func testFIB(s *recSink) *FIB {
	f := newFIB(s, DefaultRouteMetric, guard{tunnel: pfx("10.0.0.0/24"), protected: []netip.Prefix{pfx("198.51.100.1/32")}}, zap.NewNop())
	f.hubs[netip.MustParseAddr("10.0.0.1")] = true
	f.setOwn([]netip.Prefix{pfx("192.168.11.0/24")}, []netip.Prefix{pfx("192.168.11.0/24")}, []netip.Addr{netip.MustParseAddr("10.0.0.11")})
	return f
}

// TestFIBRejects: the guard keeps every poisoned best path out of the
// desired set and counts it once per announcement; good paths, own
// prefixes and withdrawals behave as before.
func TestFIBRejects(t *testing.T) {
	s := &recSink{}
	f := testFIB(s)
	hub := "10.0.0.1"
	f.apply([]PathUpdate{
		upd("192.168.12.0/24", "10.0.0.12", hub),     // Phase 2: another spoke's LAN
		upd("192.168.0.0/16", "10.0.0.1", hub),       // Phase 3 summary
		upd("0.0.0.0/0", "10.0.0.1", hub),            // default: not accepted
		upd("128.0.0.0/1", "10.0.0.12", hub),         // covers the protected NBMA
		upd("198.51.100.1/32", "10.0.0.12", hub),     // the NBMA itself
		upd("10.0.0.0/25", "10.0.0.12", hub),         // inside the tunnel
		upd("192.168.11.0/25", "10.0.0.12", hub),     // more-specific of our LAN
		upd("192.168.13.0/24", "10.0.0.255", hub),    // tunnel broadcast next hop
		upd("192.168.14.0/24", "172.16.0.1", hub),    // next hop outside the tunnel
		upd("192.168.11.0/24", "0.0.0.0", "0.0.0.0"), // our own, originated
	})
	want := "192.168.0.0/16 via 10.0.0.1 metric 20\n192.168.12.0/24 via 10.0.0.12 metric 20\n"
	if d := cmp.Diff(want, s.last()); d != "" {
		t.Errorf("routes (-want +got):\n%s", d)
	}
	wantRej := map[string]uint64{RejectDefault: 1, RejectProtected: 2, RejectTunnel: 1, RejectOwnPrefix: 1, RejectNextHop: 2}
	if d := cmp.Diff(wantRej, f.Rejected()); d != "" {
		t.Errorf("rejected (-want +got):\n%s", d)
	}
	calls := len(s.sets)
	f.apply(nil) // unchanged set: not pushed again
	if len(s.sets) != calls {
		t.Errorf("unchanged set pushed again")
	}
	f.apply([]PathUpdate{{Prefix: pfx("192.168.0.0/16"), Withdraw: true}})
	if d := cmp.Diff("192.168.12.0/24 via 10.0.0.12 metric 20\n", s.last()); d != "" {
		t.Errorf("after withdrawal (-want +got):\n%s", d)
	}
	// A newly learned NBMA address inside an installed route drops it.
	f.setProtected([]netip.Prefix{pfx("198.51.100.1/32"), pfx("192.168.12.7/32")})
	if s.last() != "" {
		t.Errorf("after setProtected: %q", s.last())
	}
}

// TestFIBMaxPrefixDrop: with the "drop" action, only the first MaxPrefixes
// of a neighbor's prefixes are installed; other neighbors are unaffected.
func TestFIBMaxPrefixDrop(t *testing.T) {
	s := &recSink{}
	f := testFIB(s)
	f.maxPerNbr = 2
	f.apply([]PathUpdate{
		upd("192.168.1.0/24", "10.0.0.12", "10.0.0.12"),
		upd("192.168.2.0/24", "10.0.0.12", "10.0.0.12"),
		upd("192.168.3.0/24", "10.0.0.12", "10.0.0.12"),
		upd("192.168.4.0/24", "10.0.0.13", "10.0.0.13"),
	})
	want := "192.168.1.0/24 via 10.0.0.12 metric 20\n192.168.2.0/24 via 10.0.0.12 metric 20\n192.168.4.0/24 via 10.0.0.13 metric 20\n"
	if d := cmp.Diff(want, s.last()); d != "" {
		t.Errorf("routes (-want +got):\n%s", d)
	}
}
