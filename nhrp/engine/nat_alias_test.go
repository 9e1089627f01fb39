package engine_test

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/dmvpnd/dmvpnd/nhrp"
	"github.com/dmvpnd/dmvpnd/nhrp/engine"
)

// mentions reports whether a appears anywhere in p as an NBMA address: the
// source, a CIE or an extension's CIE.
func mentions(p *nhrp.Packet, a netip.Addr) bool {
	if p.SrcNBMA == a {
		return true
	}
	for _, c := range p.CIEs {
		if c.ClientNBMA == a {
			return true
		}
	}
	for _, e := range p.Extensions {
		for _, c := range e.CIEs {
			if c.ClientNBMA == a {
				return true
			}
		}
	}
	return false
}

// Two spokes behind different NATs with the same private NBMA, with
// IPsec: the first SA proves the private address itself, the second an
// alias standing for it (Protection.Inner). Both register with their own
// post-NAT addresses, neither can deregister, replace or purge the other
// (although a group PSK gives them one identity), and nothing the hub
// sends names the alias.
func TestSamePrivateNBMABehindTwoNATsIPsec(t *testing.T) {
	const priv, alias, natA, natB = "172.16.0.5", "198.18.0.1", "203.0.113.1", "203.0.113.2"
	r := newRig(t, ipsecOn)
	r.node.Engine.SetProtections([]engine.Protection{
		{NBMA: addr(priv), Outer: addr(natA), Identity: priv},
		{NBMA: addr(alias), Outer: addr(natB), Identity: priv, Inner: addr(priv)},
	})
	var sent []sentPacket
	recv := func(from string, b []byte) []sentPacket {
		out := r.recv(from, b)
		sent = append(sent, out...)
		return out
	}
	if got := codes(recv(priv, registration(t, priv, "10.255.0.5", 1, false, cie{"10.255.0.5", priv, 600}))); !cmp.Equal(got, []string{"success"}) {
		t.Fatalf("A's registration: %v", got)
	}
	replyB := recv(alias, registration(t, priv, "10.255.0.6", 1, false, cie{"10.255.0.6", priv, 600}))
	if got := codes(replyB); !cmp.Equal(got, []string{"success"}) {
		t.Fatalf("B's registration: %v", got)
	}
	if len(replyB) != 1 || replyB[0].to != addr(alias) {
		t.Fatalf("B's reply went to %v, want its alias %s", replyB, alias)
	}
	if obs := natObservedOf(replyB[0].p, addr("10.255.0.6")); obs != addr(natB) {
		t.Errorf("B's reply: NAT address %s, want its post-NAT address %s", obs, natB)
	}
	want := "cache 10.255.0.5 registered nbma=172.16.0.5 claimed=172.16.0.5 observed=203.0.113.1 unique=false expires=10m0s\n" +
		"cache 10.255.0.6 registered nbma=198.18.0.1 claimed=172.16.0.5 observed=203.0.113.2 unique=false expires=10m0s\n" +
		"10.255.0.5 lladdr 172.16.0.5\n10.255.0.6 lladdr 198.18.0.1\n"
	if diff := cmp.Diff(want, r.state()); diff != "" {
		t.Fatalf("both registered (-want +got):\n%s", diff)
	}

	// B deregisters A's address, replaces it, and purges it; A
	// deregisters B's; B claims another NBMA (its alias, its NAT's).
	recv(alias, registration(t, priv, "10.255.0.6", 2, false, cie{"10.255.0.5", priv, 0}))
	recv(alias, registration(t, priv, "10.255.0.6", 3, false, cie{"10.255.0.5", priv, 600}))
	recv(alias, marshal(t, nhrp.NewPurgeRequest(addr(priv), addr("10.255.0.5"), addr(hubProto), 4, true, addr("10.255.0.5"))))
	recv(priv, registration(t, priv, "10.255.0.5", 2, false, cie{"10.255.0.6", priv, 0}))
	r.recv(alias, registration(t, alias, "10.255.0.6", 5, false, cie{"10.255.0.6", alias, 600})) // its reply echoes the claim
	recv(alias, registration(t, natB, "10.255.0.6", 6, false, cie{"10.255.0.6", natB, 600}))
	if diff := cmp.Diff(want, r.state()); diff != "" {
		t.Errorf("after the cross deregistrations, replacement and purge (-want +got):\n%s", diff)
	}
	// B taking A's address would give it two: the quota refuses it first.
	for name, n := range map[string]uint64{"drop_owned_by_another_peer": 2, "drop_address_quota": 1, "drop_wrong_responder": 1, "drop_claim_mismatch": 2} {
		if got := r.counter(name); got != n {
			t.Errorf("%s = %d, want %d", name, got, n)
		}
	}

	// A resolves B's address: the hub answers with B's claimed and
	// post-NAT addresses.
	res := recv(priv, marshal(t, nhrp.NewResolutionRequest(addr(priv), addr("10.255.0.5"), addr("10.255.0.6"), 7, 600, 0)))
	if len(res) != 1 || res[0].to != addr(priv) || len(res[0].p.CIEs) != 1 || res[0].p.CIEs[0].ClientNBMA != addr(priv) {
		t.Fatalf("resolution of B: %+v, want one reply to A naming %s", res, priv)
	}
	if obs := natObservedOf(res[0].p, addr("10.255.0.6")); obs != addr(natB) {
		t.Errorf("resolution of B: NAT address %s, want %s", obs, natB)
	}
	for _, s := range sent {
		if mentions(s.p, addr(alias)) {
			t.Errorf("%s to %s names the alias %s", s.p.Type, s.to, alias)
		}
	}

	// B's SA goes; A's stays: nothing of A's changes, and B's alias
	// proves nothing any more.
	r.node.Engine.SetProtections([]engine.Protection{{NBMA: addr(priv), Outer: addr(natA), Identity: priv}})
	if got := codes(recv(alias, registration(t, priv, "10.255.0.6", 8, false, cie{"10.255.0.6", priv, 600}))); got != nil {
		t.Errorf("B without SA: answered %v", got)
	}
	r.advance(engine.SAWaitFor)
	if r.counter("drop_untrusted") != 1 {
		t.Errorf("drop_untrusted = %d, want 1", r.counter("drop_untrusted"))
	}
}

// A NATed spoke whose NAT address changed comes back over a new SA (same
// identity and inner address, another post-NAT address): once the old SA
// is gone it refreshes its own registration; while the old SA still
// proves the address the new one is another peer and is refused.
func TestNATOwnerMovesWhenItsSAIsGone(t *testing.T) {
	const priv, natOld, natNew = "172.16.0.5", "203.0.113.1", "203.0.113.7"
	r := newRig(t, ipsecOn)
	r.node.Engine.SetProtections([]engine.Protection{{NBMA: addr(priv), Outer: addr(natOld), Identity: priv}})
	if got := codes(r.recv(priv, registration(t, priv, "10.255.0.5", 1, false, cie{"10.255.0.5", priv, 600}))); !cmp.Equal(got, []string{"success"}) {
		t.Fatalf("registration: %v", got)
	}
	// The new SA gets an alias while the old one is up.
	r.node.Engine.SetProtections([]engine.Protection{
		{NBMA: addr(priv), Outer: addr(natOld), Identity: priv},
		{NBMA: addr("198.18.0.1"), Outer: addr(natNew), Identity: priv, Inner: addr(priv)},
	})
	if got := codes(r.recv("198.18.0.1", registration(t, priv, "10.255.0.5", 2, false, cie{"10.255.0.5", priv, 600}))); !cmp.Equal(got, []string{"unique-address-already-registered"}) {
		t.Errorf("while the old SA is up: %v, want unique-address-already-registered", got)
	}
	// The old SA is gone (dead-peer detection); the new one keeps its alias.
	r.node.Engine.SetProtections([]engine.Protection{{NBMA: addr("198.18.0.1"), Outer: addr(natNew), Identity: priv, Inner: addr(priv)}})
	if got := codes(r.recv("198.18.0.1", registration(t, priv, "10.255.0.5", 3, false, cie{"10.255.0.5", priv, 600}))); !cmp.Equal(got, []string{"success"}) {
		t.Errorf("after the old SA is gone: %v, want success", got)
	}
	want := "cache 10.255.0.5 registered nbma=198.18.0.1 claimed=172.16.0.5 observed=203.0.113.7 unique=false expires=10m0s\n" +
		"10.255.0.5 lladdr 198.18.0.1\n"
	if diff := cmp.Diff(want, r.state()); diff != "" {
		t.Errorf("state (-want +got):\n%s", diff)
	}
}

// natObservedOf returns the NAT extension's address for proto.
func natObservedOf(p *nhrp.Packet, proto netip.Addr) netip.Addr {
	ext := p.Extension(nhrp.ExtensionNATAddress)
	if ext == nil {
		return netip.Addr{}
	}
	for _, c := range ext.CIEs {
		if c.ClientProto == proto {
			return c.ClientNBMA
		}
	}
	return netip.Addr{}
}
