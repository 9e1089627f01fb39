package controller

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/dmvpnd/dmvpnd/ipsec"
	"github.com/dmvpnd/dmvpnd/nhrp/engine"
)

// TestIPsecPeerFor covers where IKE goes and who initiates for each NHRP
// peer kind. The case the earlier code got wrong: two spokes
// behind the same NAT address must talk over their private addresses
// (remote = the peer's claimed address, no NAT-T), not to their own NAT's
// public address, where neither would ever initiate.
func TestIPsecPeerFor(t *testing.T) {
	a := netip.MustParseAddr
	nat := a("198.51.100.102")
	for _, tc := range []struct {
		name        string
		ev          engine.Event
		public      netip.Addr // our post-NAT address
		wantClaimed netip.Addr
		want        ipsec.Peer
	}{
		{"hub: public spoke registered",
			engine.Event{NBMA: a("198.51.100.2"), Claimed: a("198.51.100.2"), Binding: engine.KindRegistered},
			netip.Addr{}, a("198.51.100.2"), ipsec.Peer{RemoteNBMA: a("198.51.100.2"), Initiate: ipsec.Respond}},
		{"hub: NATed spoke registered",
			engine.Event{NBMA: a("192.168.2.2"), Claimed: a("192.168.2.2"), Observed: nat, Binding: engine.KindRegistered},
			netip.Addr{}, a("192.168.2.2"), ipsec.Peer{RemoteNBMA: nat, ClaimedNBMA: a("192.168.2.2"), Initiate: ipsec.Respond}},
		{"public spoke: NATed peer resolved",
			engine.Event{NBMA: a("192.168.2.2"), Claimed: a("192.168.2.2"), Observed: nat, Binding: engine.KindResolved},
			netip.Addr{}, a("192.168.2.2"), ipsec.Peer{RemoteNBMA: nat, ClaimedNBMA: a("192.168.2.2"), Initiate: ipsec.Respond}},
		{"NATed spoke: public peer resolved",
			engine.Event{NBMA: a("198.51.100.2"), Claimed: a("198.51.100.2"), Binding: engine.KindResolved},
			nat, a("198.51.100.2"), ipsec.Peer{RemoteNBMA: a("198.51.100.2"), Initiate: ipsec.Initiate}},
		{"NATed spoke: peer behind the same NAT resolved",
			engine.Event{NBMA: a("192.168.3.2"), Claimed: a("192.168.3.2"), Observed: nat, Binding: engine.KindResolved},
			nat, a("192.168.3.2"), ipsec.Peer{RemoteNBMA: a("192.168.3.2"), Initiate: ipsec.InitiateTieBreak}},
		{"public spokes",
			engine.Event{NBMA: a("198.51.100.3"), Claimed: a("198.51.100.3"), Binding: engine.KindResolved},
			netip.Addr{}, a("198.51.100.3"), ipsec.Peer{RemoteNBMA: a("198.51.100.3"), Initiate: ipsec.InitiateTieBreak}},
		{"spoke: its NHS",
			engine.Event{NBMA: a("198.51.100.1"), Claimed: a("198.51.100.1"), Binding: engine.KindNHS},
			nat, a("198.51.100.1"), ipsec.Peer{RemoteNBMA: a("198.51.100.1"), Initiate: ipsec.Initiate}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			claimed, got := ipsecPeerFor(tc.ev, tc.public)
			if claimed != tc.wantClaimed {
				t.Errorf("keyed by %v, want %v", claimed, tc.wantClaimed)
			}
			if diff := cmp.Diff(tc.want, got, cmp.Comparer(func(x, y netip.Addr) bool { return x == y })); diff != "" {
				t.Errorf("peer (-want +got):\n%s", diff)
			}
		})
	}
}

// TestAliasedPeer: two spokes behind different NATs with one private NBMA
// are two IPsec peers: the one the engine addresses by an alias is keyed
// by it and gets a connection name of its own; everyone else keeps the
// claimed address as key and the default name.
func TestAliasedPeer(t *testing.T) {
	a := netip.MustParseAddr
	priv, natA, natB, alias := a("192.168.2.2"), a("198.51.100.102"), a("198.51.100.104"), a("198.18.0.1")
	for _, tc := range []struct {
		name     string
		ev       engine.Event
		wantKey  netip.Addr
		wantName string
	}{
		{"first SA: its private address", engine.Event{NBMA: priv, Claimed: priv, Observed: natA, Binding: engine.KindRegistered}, priv, ""},
		{"second SA: its alias", engine.Event{NBMA: alias, Claimed: priv, Observed: natB, Binding: engine.KindRegistered}, alias, "192.168.2.2-at-198.51.100.104"},
		{"public spoke", engine.Event{NBMA: a("198.51.100.2"), Claimed: a("198.51.100.2"), Binding: engine.KindRegistered}, a("198.51.100.2"), ""},
		{"plain GRE behind NAT (observed address)", engine.Event{NBMA: natA, Claimed: priv, Observed: natA, Binding: engine.KindRegistered}, priv, ""},
	} {
		claimed, p := ipsecPeerFor(tc.ev, netip.Addr{})
		if key := aliasedPeer(tc.ev, claimed, &p); key != tc.wantKey || p.Name != tc.wantName {
			t.Errorf("%s: key %s name %q, want %s %q", tc.name, key, p.Name, tc.wantKey, tc.wantName)
		}
	}
}
