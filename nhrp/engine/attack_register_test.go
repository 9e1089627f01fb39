package engine_test

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/dmvpnd/dmvpnd/nhrp"

	"github.com/dmvpnd/dmvpnd/nhrp/engine"
	"github.com/google/go-cmp/cmp"
)

const (
	victimNBMA   = "198.51.100.9"
	attackerNBMA = "198.51.100.66"
	victimState  = "cache 10.255.0.9 registered nbma=198.51.100.9 claimed=198.51.100.9 observed=invalid IP unique=false expires=10m0s\n" +
		"10.255.0.9 lladdr 198.51.100.9\n"
)

// ipsecHubWithVictim is an IPsec hub where the victim (identity spoke9)
// registered 10.255.0.9 (non-unique) and the attacker holds a valid SA of
// its own (identity evil: a group PSK holder).
func ipsecHubWithVictim(t *testing.T) *rig {
	t.Helper()
	r := newRig(t, ipsecOn)
	r.node.Engine.SetProtections([]engine.Protection{
		{NBMA: addr(victimNBMA), Identity: "spoke9"},
		{NBMA: addr(attackerNBMA), Identity: "evil"},
	})
	if got := codes(r.recv(victimNBMA, registration(t, victimNBMA, "10.255.0.9", 1, false, cie{"10.255.0.9", victimNBMA, 600}))); !cmp.Equal(got, []string{"success"}) {
		t.Fatalf("victim's registration: %v", got)
	}
	if diff := cmp.Diff(victimState, r.state()); diff != "" {
		t.Fatalf("state before the attack (-want +got):\n%s", diff)
	}
	return r
}

// A key-holding spoke registers a spare tunnel address claiming the
// victim's NBMA, re-registers or deregisters the victim's address: every
// CIE is refused, the refusal is counted and reported with both addresses,
// and the victim's registration is untouched.
func TestAttackClaimAnotherSpokesNBMA(t *testing.T) {
	for _, tc := range []struct {
		name     string
		src      string // the packet's source NBMA
		c        cie
		wantCode string
		wantDrop string
	}{
		{"spare address with the victim's NBMA", attackerNBMA, cie{"10.255.0.66", victimNBMA, 600}, "administratively-prohibited", "drop_claim_mismatch"},
		{"source NBMA of the victim", victimNBMA, cie{"10.255.0.66", attackerNBMA, 600}, "administratively-prohibited", "drop_claim_mismatch"},
		{"victim's address with the victim's NBMA", attackerNBMA, cie{"10.255.0.9", victimNBMA, 600}, "administratively-prohibited", "drop_claim_mismatch"},
		{"victim's address (no-unique replacement)", attackerNBMA, cie{"10.255.0.9", attackerNBMA, 600}, "unique-address-already-registered", "drop_owned_by_another_peer"},
		{"deregister the victim", attackerNBMA, cie{"10.255.0.9", attackerNBMA, 0}, "unique-address-already-registered", "drop_owned_by_another_peer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := ipsecHubWithVictim(t)
			events := len(r.node.Events)
			got := codes(r.recv(attackerNBMA, registration(t, tc.src, "10.255.0.66", 2, false, tc.c)))
			if !cmp.Equal(got, []string{tc.wantCode}) {
				t.Errorf("codes %v, want [%s]", got, tc.wantCode)
			}
			if diff := cmp.Diff(victimState, r.state()); diff != "" {
				t.Errorf("state after the attack (-want +got):\n%s", diff)
			}
			if r.counter(tc.wantDrop) != 1 || r.counter("registrations_refused") != 1 {
				t.Errorf("%s = %d, registrations_refused = %d; want 1, 1", tc.wantDrop, r.counter(tc.wantDrop), r.counter("registrations_refused"))
			}
			var evs []string
			for _, ev := range r.node.Events[events:] {
				evs = append(evs, ev.String())
			}
			claimed := tc.c.nbma
			want := fmt.Sprintf("refused proto=%s nbma=%s claimed=%s reason=%q", tc.c.proto, attackerNBMA, claimed,
				"registration refused: "+tc.wantDrop[len("drop_"):])
			if claimed == attackerNBMA {
				want = fmt.Sprintf("refused proto=%s nbma=%s reason=%q", tc.c.proto, attackerNBMA, "registration refused: "+tc.wantDrop[len("drop_"):])
			}
			if diff := cmp.Diff([]string{want}, evs); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
		})
	}
}

// One registration with 256 CIEs squatting the whole tunnel prefix is
// refused as a whole (and costs its sender 256 tokens); the real spokes
// then register their addresses.
func TestAttackSquatTunnelPrefix(t *testing.T) {
	r := newRig(t)
	var cies []cie
	for i := range 256 {
		cies = append(cies, cie{fmt.Sprintf("10.255.0.%d", i), attackerNBMA, 65535})
	}
	got := codes(r.recv(attackerNBMA, registration(t, attackerNBMA, "10.255.0.66", 1, true, cies...)))
	if len(got) != 256 || got[0] != "administratively-prohibited" || got[255] != "administratively-prohibited" {
		t.Fatalf("codes of the squatting registration: %d, first %v", len(got), got[:1])
	}
	if diff := cmp.Diff("", r.state()); diff != "" {
		t.Errorf("state after the squat (-want +got):\n%s", diff)
	}
	if r.counter("drop_address_quota") != 256 || r.counter("registrations_accepted") != 0 {
		t.Errorf("drop_address_quota %d accepted %d, want 256, 0", r.counter("drop_address_quota"), r.counter("registrations_accepted"))
	}
	if got := codes(r.recv(victimNBMA, registration(t, victimNBMA, "10.255.0.9", 1, true, cie{"10.255.0.9", victimNBMA, 600}))); !cmp.Equal(got, []string{"success"}) {
		t.Errorf("real spoke after the squat: %v", got)
	}
}

// Addresses nobody may register, and the holding time clamp.
func TestRegistrationAddressPolicy(t *testing.T) {
	for _, tc := range []struct {
		name, proto string
		holding     uint16
		wantCode    string
		wantDrop    string
		wantState   string
	}{
		{"hub's own", hubProto, 600, "administratively-prohibited", "drop_reserved_address", ""},
		{"another NHS's", "10.255.0.254", 600, "administratively-prohibited", "drop_reserved_address", ""},
		{"network", "10.255.0.0", 600, "administratively-prohibited", "drop_reserved_address", ""},
		{"broadcast", "10.255.0.255", 600, "administratively-prohibited", "drop_reserved_address", ""},
		{"outside the tunnel prefix", "10.0.0.1", 600, "administratively-prohibited", "drop_not_acceptable", ""},
		{"holding clamped", "10.255.0.9", 65535, "success", "",
			"cache 10.255.0.9 registered nbma=198.51.100.9 claimed=198.51.100.9 observed=invalid IP unique=false expires=10m0s\n10.255.0.9 lladdr 198.51.100.9\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, func(c *engine.Config) {
				c.NHSs = []engine.NHSConfig{{NBMA: addr("192.0.2.254"), Proto: addr("10.255.0.254")}}
			})
			sent := r.recv(victimNBMA, registration(t, victimNBMA, "10.255.0.9", 1, false, cie{tc.proto, victimNBMA, tc.holding}))
			if got := codes(sent); !cmp.Equal(got, []string{tc.wantCode}) {
				t.Fatalf("codes %v, want [%s]", got, tc.wantCode)
			}
			if tc.wantDrop != "" && r.counter(tc.wantDrop) != 1 {
				t.Errorf("%s = %d, want 1", tc.wantDrop, r.counter(tc.wantDrop))
			}
			if tc.wantCode == "success" && sent[0].p.CIEs[0].HoldingTime != 600 {
				t.Errorf("reply holding time %d, want the clamped 600", sent[0].p.CIEs[0].HoldingTime)
			}
			if diff := cmp.Diff(tc.wantState, r.state()); diff != "" {
				t.Errorf("state (-want +got):\n%s", diff)
			}
		})
	}
}

// With an X.509 binding, a valid certificate registers only the tunnel
// addresses it carries; the same identity may move to another NBMA and
// replace its own registration.
func TestRegistrationBoundToIdentity(t *testing.T) {
	r := newRig(t, ipsecOn, func(c *engine.Config) { c.AddressesPerPeer = 2 })
	r.node.Engine.SetProtections([]engine.Protection{
		{NBMA: addr(victimNBMA), Identity: "spoke9", Bound: []netip.Addr{addr("10.255.0.9")}},
		{NBMA: addr("198.51.100.99"), Identity: "spoke9", Bound: []netip.Addr{addr("10.255.0.9")}},
	})
	got := codes(r.recv(victimNBMA, registration(t, victimNBMA, "10.255.0.9", 1, false,
		cie{"10.255.0.10", victimNBMA, 600}, cie{"10.255.0.9", victimNBMA, 600})))
	if !cmp.Equal(got, []string{"administratively-prohibited", "success"}) || r.counter("drop_not_bound") != 1 {
		t.Fatalf("codes %v drop_not_bound %d, want [administratively-prohibited success] and 1", got, r.counter("drop_not_bound"))
	}
	r.recv("198.51.100.99", registration(t, "198.51.100.99", "10.255.0.9", 2, true, cie{"10.255.0.9", "198.51.100.99", 600}))
	want := "cache 10.255.0.9 registered nbma=198.51.100.99 claimed=198.51.100.99 observed=invalid IP unique=true expires=10m0s\n" +
		"10.255.0.9 lladdr 198.51.100.99\n"
	if diff := cmp.Diff(want, r.state()); diff != "" {
		t.Errorf("state after the same identity moved (-want +got):\n%s", diff)
	}

	// An identity bound to no address (its certificate carries none in
	// the tunnel) registers nothing.
	r.node.Engine.SetProtections([]engine.Protection{{NBMA: addr("198.51.100.77"), Identity: "no-tunnel-address", Bound: []netip.Addr{}}})
	got = codes(r.recv("198.51.100.77", registration(t, "198.51.100.77", "10.255.0.77", 3, true, cie{"10.255.0.77", "198.51.100.77", 600})))
	if !cmp.Equal(got, []string{"administratively-prohibited"}) || r.counter("drop_not_bound") != 2 {
		t.Errorf("bound to nothing: codes %v drop_not_bound %d, want [administratively-prohibited] and 2", got, r.counter("drop_not_bound"))
	}
}

// Two spokes behind different NATs with the same private NBMA (plain
// GRE): both register, and neither can deregister or purge the other.
func TestSamePrivateNBMABehindTwoNATs(t *testing.T) {
	r := newRig(t)
	const priv, natA, natB = "172.16.0.5", "203.0.113.1", "203.0.113.2"
	r.recv(natA, registration(t, priv, "10.255.0.5", 1, false, cie{"10.255.0.5", priv, 600}))
	r.recv(natB, registration(t, priv, "10.255.0.6", 1, false, cie{"10.255.0.6", priv, 600}))
	want := "cache 10.255.0.5 registered nbma=203.0.113.1 claimed=172.16.0.5 observed=203.0.113.1 unique=false expires=10m0s\n" +
		"cache 10.255.0.6 registered nbma=203.0.113.2 claimed=172.16.0.5 observed=203.0.113.2 unique=false expires=10m0s\n" +
		"10.255.0.5 lladdr 203.0.113.1\n10.255.0.6 lladdr 203.0.113.2\n"
	if diff := cmp.Diff(want, r.state()); diff != "" {
		t.Fatalf("both registered (-want +got):\n%s", diff)
	}
	// B deregisters A's address, then purges it claiming to be A.
	r.recv(natB, registration(t, priv, "10.255.0.6", 2, false, cie{"10.255.0.5", priv, 0}))
	r.recv(natB, marshal(t, nhrp.NewPurgeRequest(addr(priv), addr("10.255.0.5"), addr(hubProto), 3, true, addr("10.255.0.5"))))
	if diff := cmp.Diff(want, r.state()); diff != "" {
		t.Errorf("after B's deregistration and purge of A (-want +got):\n%s", diff)
	}
	if r.counter("drop_owned_by_another_peer") != 1 || r.counter("drop_wrong_responder") != 1 {
		t.Errorf("drop_owned_by_another_peer %d drop_wrong_responder %d, want 1, 1", r.counter("drop_owned_by_another_peer"), r.counter("drop_wrong_responder"))
	}
}

// A group PSK lets a key holder assert another spoke's identity from its
// own address. While the victim's SA is up the key holder is not its
// owner: it can neither take over nor deregister the victim's tunnel
// address, and the refusals are counted. Once the victim's SA is gone
// the same identity at the new address is the peer again (a spoke whose
// address changed).
func TestAssertedIdentityFromAnotherAddress(t *testing.T) {
	const attacker = "198.51.100.66"
	r := newRig(t, ipsecOn)
	both := []engine.Protection{
		{NBMA: addr(victimNBMA), Identity: "spoke9"},
		{NBMA: addr(attacker), Identity: "spoke9"},
	}
	r.node.Engine.SetProtections(both)
	if got := codes(r.recv(victimNBMA, registration(t, victimNBMA, "10.255.0.9", 1, false, cie{"10.255.0.9", victimNBMA, 600}))); !cmp.Equal(got, []string{"success"}) {
		t.Fatalf("victim's registration: %v", got)
	}
	before := r.state()
	for i, holding := range []uint16{600, 0} { // take over, then deregister
		got := codes(r.recv(attacker, registration(t, attacker, "10.255.0.9", uint32(2+i), false, cie{"10.255.0.9", attacker, holding})))
		if !cmp.Equal(got, []string{"unique-address-already-registered"}) {
			t.Errorf("key holder, holding %d: %v, want unique-address-already-registered", holding, got)
		}
	}
	if r.counter("drop_owned_by_another_peer") != 2 {
		t.Errorf("drop_owned_by_another_peer %d, want 2", r.counter("drop_owned_by_another_peer"))
	}
	if diff := cmp.Diff(before, r.state()); diff != "" {
		t.Errorf("state changed (-before +after):\n%s", diff)
	}
	// The victim's SA is gone: the identity at the other address owns it.
	r.node.Engine.SetProtections(both[1:])
	if got := codes(r.recv(attacker, registration(t, attacker, "10.255.0.9", 4, false, cie{"10.255.0.9", attacker, 600}))); !cmp.Equal(got, []string{"success"}) {
		t.Errorf("after the first SA is gone: %v, want success", got)
	}
}
