package engine_test

import (
	"testing"

	"github.com/dmvpnd/dmvpnd/nhrp/engine"
	"github.com/google/go-cmp/cmp"
)

// With IPsec, NHRP from an NBMA address no SA proves changes nothing and
// is not answered (an outsider injecting cleartext GRE, or anyone behind
// a protected spoke's NAT: a NAT's public address is never trusted);
// neither is NHRP from an address two SAs claim.
func TestProtectionGatesReceive(t *testing.T) {
	victim := engine.Protection{NBMA: addr("198.51.100.9"), Identity: "spoke9"}
	for _, tc := range []struct {
		name       string
		prot       []engine.Protection
		from       string
		wantDrop   string
		wantState  string
		wantAnswer int
	}{
		{name: "no sa", from: "198.51.100.9", wantDrop: "drop_untrusted"},
		{name: "sa with another address", prot: []engine.Protection{{NBMA: addr("198.51.100.8"), Identity: "spoke8"}},
			from: "198.51.100.9", wantDrop: "drop_untrusted"},
		{name: "public address of a protected NATed spoke", prot: []engine.Protection{
			{NBMA: addr("172.16.0.9"), Outer: addr("203.0.113.1"), Identity: "spoke9"}},
			from: "203.0.113.1", wantDrop: "drop_untrusted"},
		{name: "two identities claim the address", prot: []engine.Protection{victim,
			{NBMA: addr("198.51.100.9"), Outer: addr("203.0.113.66"), Identity: "attacker"}},
			from: "198.51.100.9", wantDrop: "drop_ambiguous_sa"},
		{name: "one identity, two outer addresses", prot: []engine.Protection{victim,
			{NBMA: addr("198.51.100.9"), Outer: addr("203.0.113.66"), Identity: "spoke9"}},
			from: "198.51.100.9", wantDrop: "drop_ambiguous_sa"},
		{name: "proven", prot: []engine.Protection{victim, victim}, from: "198.51.100.9", wantAnswer: 1,
			wantState: "cache 10.255.0.9 registered nbma=198.51.100.9 claimed=198.51.100.9 observed=invalid IP unique=false expires=10m0s\n" +
				"10.255.0.9 lladdr 198.51.100.9\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, ipsecOn)
			r.node.Engine.SetProtections(tc.prot)
			sent := r.recv(tc.from, registration(t, tc.from, "10.255.0.9", 1, false, cie{"10.255.0.9", tc.from, 600}))
			if len(sent) != tc.wantAnswer {
				t.Errorf("engine sent %d packets, want %d", len(sent), tc.wantAnswer)
			}
			if diff := cmp.Diff(tc.wantState, r.state()); diff != "" {
				t.Errorf("state (-want +got):\n%s", diff)
			}
			r.advance(engine.SAWaitFor) // a packet held for an SA that never comes is dropped
			if len(r.sent) != tc.wantAnswer {
				t.Errorf("engine sent %d packets in all, want %d", len(r.sent), tc.wantAnswer)
			}
			if tc.wantDrop != "" && r.counter(tc.wantDrop) != 1 {
				t.Errorf("%s = %d, want 1 (counters %v)", tc.wantDrop, r.counter(tc.wantDrop), r.node.Engine.Counters())
			}
		})
	}
}

// With IPsec the engine sends nothing to an NBMA no SA proves, and sends
// what waited for it once the SA is reported.
func TestProtectionGatesSend(t *testing.T) {
	cfg := spokeConfig(2)
	cfg.IPsec = true
	r := newRigNode(t, "198.51.100.2", cfg)
	r.node.Engine.Start()
	if err := r.net.Run(); err != nil {
		t.Fatal(err)
	}
	if len(r.sent) != 0 || r.counter("drop_send_no_sa") != 1 || r.counter("tx_packets") != 0 {
		t.Fatalf("before the SA: sent %d, drop_send_no_sa %d, tx %d; want 0, 1, 0", len(r.sent), r.counter("drop_send_no_sa"), r.counter("tx_packets"))
	}
	r.node.Engine.SetProtections([]engine.Protection{{NBMA: addr("198.51.100.77"), Identity: "other"},
		{NBMA: addr(hubNBMA), Identity: "hub"}, {NBMA: addr(hubNBMA), Identity: "impostor", Outer: addr("203.0.113.6")}})
	if err := r.net.Run(); err != nil {
		t.Fatal(err)
	}
	if len(r.sent) != 0 || r.counter("drop_ambiguous_sa") != 0 {
		t.Fatalf("with an ambiguous SA for the hub: sent %d, drop_ambiguous_sa %d; want 0, 0 (nothing retried)", len(r.sent), r.counter("drop_ambiguous_sa"))
	}
	r.node.Engine.SetProtections([]engine.Protection{{NBMA: addr(hubNBMA), Identity: "hub"}})
	if err := r.net.Run(); err != nil {
		t.Fatal(err)
	}
	if len(r.sent) != 1 || r.sent[0].to != addr(hubNBMA) || r.sent[0].p.Type.String() != "registration-request" {
		t.Fatalf("after the SA: sent %+v, want the registration to the hub", r.sent)
	}
}

// The post-NAT address of a peer comes from its SA, not from what it
// claims (the GRE source is its private, claimed address).
func TestProtectionOuterFromSA(t *testing.T) {
	r := newRig(t, ipsecOn)
	r.node.Engine.SetProtections([]engine.Protection{{NBMA: addr("172.16.0.9"), Outer: addr("203.0.113.1"), Identity: "spoke9"}})
	r.recv("172.16.0.9", registration(t, "172.16.0.9", "10.255.0.9", 1, false, cie{"10.255.0.9", "172.16.0.9", 600}))
	want := "cache 10.255.0.9 registered nbma=172.16.0.9 claimed=172.16.0.9 observed=203.0.113.1 unique=false expires=10m0s\n" +
		"10.255.0.9 lladdr 172.16.0.9\n"
	if diff := cmp.Diff(want, r.state()); diff != "" {
		t.Errorf("state (-want +got):\n%s", diff)
	}
}
