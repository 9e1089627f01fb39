package engine_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/dmvpnd/dmvpnd/nhrp/engine"
	"github.com/dmvpnd/dmvpnd/nhrp/engine/nhrpsim"
)

// adoptTopo is a hub with spokes 2 and 3, spoke 2 adopting 10.255.0.3 at
// NBMA adopted (none if ""), started. It returns spoke 2.
func adoptTopo(t *testing.T, adopted string) (*topo, *nhrpsim.Node) {
	tp := newTopo(t)
	s2 := tp.spoke(2, "198.51.100.2", nil)
	tp.spoke(3, "198.51.100.3", nil)
	if adopted != "" {
		s2.Engine.Adopt(addr("10.255.0.3"), addr(adopted))
	}
	tp.start()
	return tp, s2
}

// TestAdoptKeepsDirectNeighbor: a restarted spoke whose kernel still maps
// the peer's tunnel address to its NBMA address re-resolves the peer and
// keeps that entry on the direct address while it validates the path
// again. Without the adoption (or when the adopted address is not the one
// resolved, or the probe fails) the entry goes through the hub as usual.
func TestAdoptKeepsDirectNeighbor(t *testing.T) {
	for _, tc := range []struct {
		name      string
		adopt     string // adopted NBMA for 10.255.0.3, "" none
		probeFail bool
		binds     []string
		path      string
	}{
		{name: "adopted", adopt: "198.51.100.3", binds: []string{"198.51.100.3"}, path: "up"},
		{name: "not adopted", binds: []string{"192.0.2.1", "198.51.100.3"}, path: "up"},
		{name: "adopted other address", adopt: "198.51.100.99", binds: []string{"192.0.2.1", "198.51.100.3"}, path: "up"},
		{name: "adopted but probe fails", adopt: "198.51.100.3", probeFail: true,
			binds: []string{"198.51.100.3", "192.0.2.1"}, path: "down"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tp, s2 := adoptTopo(t, tc.adopt)
			if tc.probeFail {
				// The direct path is broken: only packets through the hub pass.
				tp.net.Drop = func(src, dst netip.Addr, _ []byte) bool {
					return src != addr(hubNBMA) && dst != addr(hubNBMA)
				}
			}
			s2.Engine.Resolve(addr("10.255.0.3"))
			tp.run()
			tp.advance(10 * time.Second) // probe timeouts
			if diff := cmp.Diff(tc.binds, bindHistory(s2, "10.255.0.3")); diff != "" {
				t.Errorf("binding history for 10.255.0.3 (-want +got):\n%s", diff)
			}
			ce, ok := s2.Engine.Entry(addr("10.255.0.3"))
			if !ok || ce.Path != tc.path {
				t.Errorf("Entry(10.255.0.3) = %+v, %v; want path %s", ce, ok, tc.path)
			}
		})
	}
}

// TestAdoptForgottenAfterUse: once the path was decided, a later
// re-validation (after a failure) starts from the hub path again.
func TestAdoptForgottenAfterUse(t *testing.T) {
	tp, s2 := adoptTopo(t, "198.51.100.3")
	s2.Engine.Resolve(addr("10.255.0.3"))
	tp.run()
	// The direct path breaks: keepalives fail, the entry moves to the hub.
	tp.net.Drop = func(src, dst netip.Addr, _ []byte) bool {
		return src != addr(hubNBMA) && dst != addr(hubNBMA)
	}
	tp.advance(30 * time.Second)
	tp.net.Drop = nil
	tp.advance(120 * time.Second) // retried with backoff, proven again
	want := []string{"198.51.100.3", "192.0.2.1", "198.51.100.3"}
	if diff := cmp.Diff(want, bindHistory(s2, "10.255.0.3")); diff != "" {
		t.Errorf("binding history (-want +got):\n%s", diff)
	}
}

// TestAdoptExpires: an adoption no resolution used within the holding
// time is forgotten.
func TestAdoptExpires(t *testing.T) {
	tp, s2 := adoptTopo(t, "198.51.100.3")
	tp.advance(holding + time.Second)
	s2.Engine.Resolve(addr("10.255.0.3"))
	tp.run()
	want := []string{"192.0.2.1", "198.51.100.3"}
	if diff := cmp.Diff(want, bindHistory(s2, "10.255.0.3")); diff != "" {
		t.Errorf("binding history (-want +got):\n%s", diff)
	}
}

// TestEntryAndNegative covers the single-entry lookups.
func TestEntryAndNegative(t *testing.T) {
	tp := newTopo(t)
	s2 := tp.spoke(2, "198.51.100.2", nil)
	tp.start()
	tp.run()
	if ce, ok := s2.Engine.Entry(addr(hubProto)); !ok || ce.Kind != engine.KindNHS || ce.Bound != addr(hubNBMA) {
		t.Errorf("Entry(hub) = %+v, %v; want the bound NHS entry", ce, ok)
	}
	if _, ok := s2.Engine.Entry(addr("10.255.0.9")); ok {
		t.Error("Entry(10.255.0.9) found an entry for an unknown address")
	}
	s2.Engine.Resolve(addr("10.255.0.9")) // nobody has it: the hub says no
	tp.run()
	if !s2.Engine.Negative(addr("10.255.0.9")) {
		t.Errorf("no negative entry after a refused resolution; cache %+v", s2.Engine.Cache())
	}
	if s2.Engine.Negative(addr(hubProto)) {
		t.Error("negative entry for the NHS")
	}
}
