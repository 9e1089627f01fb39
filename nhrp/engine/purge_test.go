package engine_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/dmvpnd/dmvpnd/nhrp/engine"
)

// moveSpoke2 starts spoke 2 again, from NBMA 198.51.100.22 with cfg (the
// caller decides whether its first node is still up), lets the exchanges
// run and returns the NBMA the hub then binds 10.255.0.2 to.
func moveSpoke2(tp *topo, cfg engine.Config) netip.Addr {
	moved := tp.add("spoke2-moved", "198.51.100.22", nil, cfg)
	moved.Engine.Start()
	tp.run()
	got, _ := tp.hub.Neigh.Lookup(addr("10.255.0.2"))
	return got
}

func TestPurgeOnNBMAChange(t *testing.T) {
	tp := newTopo(t)
	s2 := tp.spoke(2, "198.51.100.2", nil)
	s3 := tp.spoke(3, "198.51.100.3", nil)
	tp.start()
	s3.Engine.NeighborMiss(addr("10.255.0.2"))
	tp.run()
	if st := shortcutState(s3, "10.255.0.2/32"); st != engine.ShortcutUp {
		t.Fatalf("spoke3 -> spoke2: %v", st)
	}

	// Spoke 2 comes back from a new NBMA address (non-unique, no IPsec:
	// allowed).
	s2.Down = true
	if got := moveSpoke2(tp, spokeConfig(2)); got != addr("198.51.100.22") {
		t.Errorf("hub binding %v, want the new NBMA", got)
	}
	wantCounter(t, tp.hub, "purges_sent", 1)
	wantCounter(t, s3, "purges_received", 1)
	if _, ok := cacheEntry(s3, "10.255.0.2", engine.KindResolved); ok {
		t.Error("spoke3 still caches the old binding")
	}
	if _, ok := s3.Neigh.Lookup(addr("10.255.0.2")); ok {
		t.Errorf("spoke3 still has a neighbor entry:\n%s", s3.Neigh)
	}
	wantCounter(t, tp.hub, "drop_unmatched_reply", 0)
	// Resolving again finds the new address.
	s3.Engine.NeighborMiss(addr("10.255.0.2"))
	tp.run()
	if ce, _ := cacheEntry(s3, "10.255.0.2", engine.KindResolved); ce.NBMA != addr("198.51.100.22") || ce.Path != "up" {
		t.Errorf("re-resolved entry %+v", ce)
	}
}

func TestDeregisterPurgesOwnRegistration(t *testing.T) {
	tp := newTopo(t)
	s2 := tp.spoke(2, "198.51.100.2", nil)
	tp.start()
	s2.Engine.Deregister()
	tp.run()
	if _, ok := cacheEntry(tp.hub, "10.255.0.2", engine.KindRegistered); ok {
		t.Error("hub kept the registration after the spoke purged it")
	}
	if got := nhsStates(s2); got != "192.0.2.1=down" {
		t.Errorf("spoke NHS states %s", got)
	}
}

// TestClearRegistrationLetsAUniqueSpokeMove: a unique registration stays
// with the NBMA that made it: the spoke coming back from another address
// is refused (code 14, counted) until the operator clears the
// registration (dmvpnctl clear nhrp registration), after which its next
// retry registers.
func TestClearRegistrationLetsAUniqueSpokeMove(t *testing.T) {
	tp := newTopo(t)
	unique := func(c engine.Config) engine.Config { c.Unique = true; return c }
	s2 := tp.add("spoke2", "198.51.100.2", nil, unique(spokeConfig(2)))
	tp.start()
	s2.Down = true
	if got := moveSpoke2(tp, unique(spokeConfig(2))); got != addr("198.51.100.2") {
		t.Fatalf("hub binding %v after a unique registration from another NBMA, want the owner's 198.51.100.2", got)
	}
	wantCounter(t, tp.hub, "drop_owned_by_another_peer", 1)
	if !tp.hub.Engine.ClearRegistration(addr("10.255.0.2")) || tp.hub.Engine.ClearRegistration(addr("10.255.0.2")) {
		t.Error("ClearRegistration: want true once, then false")
	}
	tp.run()
	tp.advance(2 * time.Second) // the moved spoke's retry after its refusal
	if got, _ := tp.hub.Neigh.Lookup(addr("10.255.0.2")); got != addr("198.51.100.22") {
		t.Errorf("hub binding %v after the clear, want the new NBMA", got)
	}
}

// TestUniqueRequestDoesNotReplace: without IPsec a no-unique registration
// moves to another NBMA only by a no-unique request; a unique request for
// it from elsewhere is refused with code 14 (RFC 2332 5.2.3) and changes
// nothing.
func TestUniqueRequestDoesNotReplace(t *testing.T) {
	tp := newTopo(t)
	tp.spoke(2, "198.51.100.2", nil) // no-unique
	tp.start()
	unique := spokeConfig(2)
	unique.Unique = true
	if got := moveSpoke2(tp, unique); got != addr("198.51.100.2") {
		t.Fatalf("hub binding %v after a unique request from another NBMA, want 198.51.100.2", got)
	}
	wantCounter(t, tp.hub, "drop_owned_by_another_peer", 1)
}
