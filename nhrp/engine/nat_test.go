package engine_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/dmvpnd/dmvpnd/nhrp"
	"github.com/dmvpnd/dmvpnd/nhrp/engine"
	"github.com/dmvpnd/dmvpnd/nhrp/engine/nhrpsim"
	"github.com/google/go-cmp/cmp"
)

// natSpokes is a hub with spoke 2 behind a NAT (172.16.0.2, public
// 203.0.113.1) and spoke 3 on a public address, started.
func natSpokes(t *testing.T) (tp *topo, s2, s3 *nhrpsim.Node) {
	tp = newTopo(t)
	nat := tp.net.AddNAT("203.0.113.1")
	s2 = tp.spoke(2, "172.16.0.2", nat)
	s3 = tp.spoke(3, "198.51.100.3", nil)
	tp.start()
	return tp, s2, s3
}

// One spoke behind a NAT, plain GRE (no IPsec): the hub sees and reports
// the post-NAT address; the spokes resolve each other and talk directly
// once the NATed spoke has opened the mapping.
func TestSpokeBehindNATResolvesAndIsResolved(t *testing.T) {
	tp, s2, s3 := natSpokes(t)

	if got := s2.Engine.PublicNBMA(); got != addr("203.0.113.1") {
		t.Errorf("NATed spoke learnt public address %v, want 203.0.113.1", got)
	}
	if got := s3.Engine.PublicNBMA(); got.IsValid() {
		t.Errorf("public spoke thinks it is behind NAT at %v", got)
	}
	ce, _ := cacheEntry(tp.hub, "10.255.0.2", engine.KindRegistered)
	ups := tp.hub.EventsOf(engine.EventPeerUp)
	if len(ups) == 0 || ups[0].Claimed != addr("172.16.0.2") || ups[0].Observed != addr("203.0.113.1") {
		t.Fatalf("hub peer-up for the NATed spoke lacks claimed/observed: %v", ups)
	}
	want := engine.CacheEntry{Proto: addr("10.255.0.2"), Kind: engine.KindRegistered, NBMA: addr("203.0.113.1"),
		Bound: addr("203.0.113.1"), Claimed: addr("172.16.0.2"), Observed: addr("203.0.113.1"), Expires: ce.Expires,
		Since: ups[0].Time}
	if diff := cmp.Diff(want, ce, netipCmp); diff != "" {
		t.Errorf("hub binding for the NATed spoke (-want +got):\n%s", diff)
	}

	// The NATed spoke resolves the public one first (it must open the NAT).
	s2.Engine.NeighborMiss(addr("10.255.0.3"))
	tp.run()
	if st := shortcutState(s2, "10.255.0.3/32"); st != engine.ShortcutUp {
		t.Fatalf("NATed -> public shortcut %v, want up", st)
	}
	// The public spoke learns the NATed spoke's post-NAT address from the
	// hub's NAT extension and uses it as GRE destination.
	s3.Engine.NeighborMiss(addr("10.255.0.2"))
	tp.run()
	ce, _ = cacheEntry(s3, "10.255.0.2", engine.KindResolved)
	if ce.Claimed != addr("172.16.0.2") || ce.Observed != addr("203.0.113.1") || ce.NBMA != addr("203.0.113.1") || ce.Path != "up" {
		t.Errorf("public spoke's entry for the NATed one: %+v", ce)
	}
}

// Two spokes behind the same NAT, with IPsec tunnel mode (inner selectors
// = claimed addresses): the hub keeps them apart by claimed address, they
// reach each other over their private addresses, and a public spoke
// reaches each through its own SA. A spoke behind a different NAT stays on
// the hub path.
func TestTwoSpokesBehindSameNATWithIPsec(t *testing.T) {
	tp := newTopo(t)
	tp.net.IPsec = true
	nat := tp.net.AddNAT("203.0.113.1")
	other := tp.net.AddNAT("203.0.113.200")
	ipsec := func(c *engine.Config) { c.IPsec = true }
	s2 := tp.spoke(2, "172.16.0.2", nat, ipsec)
	s4 := tp.spoke(4, "172.16.0.4", nat, ipsec)
	s3 := tp.spoke(3, "198.51.100.3", nil, ipsec)
	s5 := tp.spoke(5, "172.17.0.5", other, ipsec)
	tp.start()
	if got := nhsStates(s5); got != "192.0.2.1=up" {
		t.Errorf("spoke behind the other NAT: %s", got)
	}

	want := "10.255.0.2 lladdr 172.16.0.2\n10.255.0.3 lladdr 198.51.100.3\n10.255.0.4 lladdr 172.16.0.4\n10.255.0.5 lladdr 172.17.0.5\n"
	if diff := cmp.Diff(want, tp.hub.Neigh.String()); diff != "" {
		t.Errorf("hub neighbor table (-want +got):\n%s", diff)
	}
	for _, s := range []string{"10.255.0.2", "10.255.0.4"} {
		if ce, _ := cacheEntry(tp.hub, s, engine.KindRegistered); ce.Observed != addr("203.0.113.1") {
			t.Errorf("hub entry %s observed %v, want 203.0.113.1", s, ce.Observed)
		}
	}

	// Same NAT: direct over the private addresses.
	s2.Engine.NeighborMiss(addr("10.255.0.4"))
	s4.Engine.NeighborMiss(addr("10.255.0.2"))
	tp.run()
	for _, c := range []struct {
		from *nhrpsim.Node
		peer string
		nbma string
	}{{s2, "10.255.0.4", "172.16.0.4"}, {s4, "10.255.0.2", "172.16.0.2"}} {
		if got, _ := c.from.Neigh.Lookup(addr(c.peer)); got != addr(c.nbma) || shortcutState(c.from, c.peer+"/32") != engine.ShortcutUp {
			t.Errorf("%s -> %s: lladdr %v state %v, want %s up", c.from.Name, c.peer, got, shortcutState(c.from, c.peer+"/32"), c.nbma)
		}
	}

	// Public spoke <-> NATed spokes: the NATed side initiates; the public
	// side addresses each by its claimed address (the SA's inner selector).
	s2.Engine.NeighborMiss(addr("10.255.0.3"))
	s4.Engine.NeighborMiss(addr("10.255.0.3"))
	tp.run()
	s3.Engine.NeighborMiss(addr("10.255.0.2"))
	s3.Engine.NeighborMiss(addr("10.255.0.4"))
	tp.run()
	for _, p := range []string{"10.255.0.2", "10.255.0.4"} {
		if st := shortcutState(s3, p+"/32"); st != engine.ShortcutUp {
			t.Errorf("public spoke -> %s: %v, want up", p, st)
		}
	}
	if got, _ := s3.Neigh.Lookup(addr("10.255.0.4")); got != addr("172.16.0.4") {
		t.Errorf("public spoke lladdr for 10.255.0.4 = %v, want the claimed 172.16.0.4", got)
	}

	// Different NATs: no direct path; traffic stays on the hub.
	s2.Engine.NeighborMiss(addr("10.255.0.5"))
	tp.run()
	if st := shortcutState(s2, "10.255.0.5/32"); st != engine.ShortcutHubOnly {
		t.Errorf("across two NATs: %v, want hub-only", st)
	}
	if got, _ := s2.Neigh.Lookup(addr("10.255.0.5")); got != addr(hubNBMA) {
		t.Errorf("across two NATs lladdr %v, want the hub", got)
	}
}

// Forwarded resolutions carry post-NAT addresses both ways: the hub adds
// the NATed requester's observed address to the request it forwards, and
// the NATed egress's to the reply it relays.
func TestForwardedResolutionsCarryPostNATAddresses(t *testing.T) {
	tp, s2, s3 := natSpokes(t)

	var fwdNAT []string // NAT extension of requests the hub forwarded to spoke 3
	tp.net.Trace = func(_, _ netip.Addr, dst *nhrpsim.Node, b []byte) {
		p, err := nhrp.Parse(b)
		if err != nil || dst != s3 || p.Type != nhrp.TypeResolutionRequest || p.Extension(nhrp.ExtensionForwardTransit) == nil ||
			len(p.Extension(nhrp.ExtensionForwardTransit).CIEs) == 0 {
			return
		}
		for _, c := range p.Extension(nhrp.ExtensionNATAddress).CIEs {
			fwdNAT = append(fwdNAT, c.ClientProto.String()+"@"+c.ClientNBMA.String())
		}
	}
	tp.hub.Engine.Hairpin(ipv4("10.0.2.5", "10.0.3.7")) // NATed spoke is the ingress
	tp.run()
	if diff := cmp.Diff([]string{"10.255.0.2@203.0.113.1"}, fwdNAT); diff != "" {
		t.Errorf("NAT extension of the forwarded request (-want +got):\n%s", diff)
	}
	if st := shortcutState(s2, "10.0.3.0/24"); st != engine.ShortcutUp {
		t.Fatalf("NATed ingress shortcut %v, want up", st)
	}
	req, ok := cacheEntry(s3, "10.255.0.2", engine.KindRequester)
	if !ok || req.Claimed != addr("172.16.0.2") || req.Observed != addr("203.0.113.1") {
		t.Errorf("egress's requester entry %+v (found %v), want claimed 172.16.0.2 observed 203.0.113.1", req, ok)
	}

	tp.hub.Engine.Hairpin(ipv4("10.0.3.7", "10.0.2.5")) // and back: the NATed spoke is the egress
	tp.run()
	if st := shortcutState(s3, "10.0.2.0/24"); st != engine.ShortcutUp {
		t.Fatalf("public ingress shortcut to the NATed egress %v, want up", st)
	}
	if ce, _ := cacheEntry(s3, "10.255.0.2", engine.KindResolved); ce.NBMA != addr("203.0.113.1") || ce.Observed != addr("203.0.113.1") {
		t.Errorf("public spoke's entry for the NATed egress %+v, want GRE to 203.0.113.1", ce)
	}
}

// With IPsec, a public spoke cannot open the direct path to a NATed one
// (the NATed side must initiate): its shortcut falls back to the hub, and
// comes up as soon as the NATed spoke's own probe arrives, without waiting
// for the retry backoff.
func TestPublicToNATedWaitsForNATedInitiator(t *testing.T) {
	tp := newTopo(t)
	tp.net.IPsec = true
	nat := tp.net.AddNAT("203.0.113.1")
	ipsec := func(c *engine.Config) { c.IPsec = true }
	s2 := tp.spoke(2, "172.16.0.2", nat, ipsec)
	s3 := tp.spoke(3, "198.51.100.3", nil, ipsec)
	tp.start()
	s3.Engine.NeighborMiss(addr("10.255.0.2"))
	tp.run()
	tp.advance(3 * time.Second) // three unanswered probes
	if st := shortcutState(s3, "10.255.0.2/32"); st != engine.ShortcutDown {
		t.Fatalf("public -> NATed before the NATed side initiated: %v, want down", st)
	}
	s2.Engine.NeighborMiss(addr("10.255.0.3"))
	tp.run() // no clock movement: the incoming probe triggers the retry
	if st := shortcutState(s3, "10.255.0.2/32"); st != engine.ShortcutUp {
		t.Errorf("public -> NATed after the NATed side initiated: %v, want up", st)
	}
}

// Without IPsec two spokes behind one public address cannot be told apart
// (plain GRE has no ports, and a peer is its source NBMA): the first to
// register holds the AddressesPerPeer quota of the NAT's address and the
// second is refused, instead of both getting bindings to one address that
// would deliver each one's packets to whichever sent last. The package
// documentation requires IPsec tunnel mode for that case.
func TestTwoSpokesBehindSameNATWithoutIPsecRefused(t *testing.T) {
	tp := newTopo(t)
	nat := tp.net.AddNAT("203.0.113.1")
	tp.spoke(2, "172.16.0.2", nat)
	tp.spoke(4, "172.16.0.4", nat)
	tp.start() // spoke 4 registers last
	if diff := cmp.Diff("10.255.0.2 lladdr 203.0.113.1\n", tp.hub.Neigh.String()); diff != "" {
		t.Errorf("hub neighbor table (-want +got):\n%s", diff)
	}
	wantCounter(t, tp.hub, "drop_address_quota", 1)
}
