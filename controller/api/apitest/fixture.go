package apitest

import (
	"net/netip"
	"time"

	"github.com/dmvpnd/dmvpnd/controller/api"
)

// Now is the instant the fixture is relative to.
var Now = time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)

func a(s string) netip.Addr         { return netip.MustParseAddr(s) }
func p(s string) netip.Prefix       { return netip.MustParsePrefix(s) }
func ap(s string) netip.AddrPort    { return netip.MustParseAddrPort(s) }
func ago(d time.Duration) time.Time { return Now.Add(-d) }
func in(d time.Duration) time.Time  { return Now.Add(d) }

// HubFixture is a hub with three registered spokes (one NATed, one down)
// and a second hub as a static peer.
func HubFixture() Snapshot {
	return Snapshot{
		Status: api.Status{Ready: true, State: "running", Role: "hub", Version: "v0.1.0-test", Started: ago(26*time.Hour + 3*time.Minute)},
		DMVPN: api.DMVPN{
			Interface: "gre1", Role: "hub", Address: p("10.0.0.1/24"), NBMA: a("192.0.2.1"),
			Peers: []api.Peer{
				{NBMA: a("192.0.2.2"), Tunnel: a("10.0.0.2"), State: api.PeerUp, Since: ago(26 * time.Hour), Entries: 1, Attrs: []api.Attr{api.AttrStatic}},
				{NBMA: a("192.0.2.11"), Tunnel: a("10.0.0.11"), State: api.PeerUp, Since: ago(1*time.Hour + 2*time.Minute + 3*time.Second), Entries: 1, Attrs: []api.Attr{api.AttrDynamic}},
				{NBMA: a("172.16.0.12"), ObservedNBMA: a("203.0.113.7"), Tunnel: a("10.0.0.12"), State: api.PeerUp, Since: ago(42 * time.Second), Entries: 1, Attrs: []api.Attr{api.AttrDynamic, api.AttrNAT}},
				{NBMA: a("198.51.100.13"), Tunnel: a("10.0.0.13"), State: api.PeerIKE, Since: ago(5 * time.Second), Entries: 1, Attrs: []api.Attr{api.AttrDynamic}},
			},
			NHS: []api.NHS{
				{NBMA: a("192.0.2.2"), Protocol: a("10.0.0.2"), Priority: 0, State: api.NHSResponding, Since: ago(26 * time.Hour), Expires: in(8 * time.Minute)},
			},
		},
		Cache: []api.CacheEntry{
			{Type: api.CacheLocal, Prefix: p("10.0.0.1/32"), Tunnel: a("10.0.0.1"), NBMA: a("192.0.2.1")},
			{Type: api.CacheNHS, Prefix: p("10.0.0.2/32"), Tunnel: a("10.0.0.2"), NBMA: a("192.0.2.2"), Created: ago(26 * time.Hour), Expires: in(8 * time.Minute), Flags: []api.CacheFlag{api.FlagUsed}},
			{Type: api.CacheDynamic, Prefix: p("10.0.0.11/32"), Tunnel: a("10.0.0.11"), NBMA: a("192.0.2.11"), Created: ago(time.Hour), Expires: in(9*time.Minute + 58*time.Second), Flags: []api.CacheFlag{api.FlagUnique, api.FlagUsed}},
			{Type: api.CacheDynamic, Prefix: p("10.0.0.12/32"), Tunnel: a("10.0.0.12"), NBMA: a("172.16.0.12"), ObservedNBMA: a("203.0.113.7"), Created: ago(42 * time.Second), Expires: in(9*time.Minute + 18*time.Second), Flags: []api.CacheFlag{api.FlagUnique, api.FlagNAT}},
			{Type: api.CacheDynamic, Prefix: p("10.0.0.13/32"), Tunnel: a("10.0.0.13"), NBMA: a("198.51.100.13"), Created: ago(5 * time.Second), Expires: in(9*time.Minute + 55*time.Second)},
		},
		NHS: []api.NHS{
			{NBMA: a("192.0.2.2"), Protocol: a("10.0.0.2"), Priority: 0, State: api.NHSResponding, Since: ago(26 * time.Hour), Expires: in(8 * time.Minute)},
		},
		Shortcuts: nil,
		SAs: []api.SA{
			{Name: "dmvpn-192.0.2.2", PeerNBMA: a("192.0.2.2"), State: api.SAEstablished, Local: a("192.0.2.1"), Remote: a("192.0.2.2"), Since: ago(26 * time.Hour)},
			{Name: "dmvpn-192.0.2.11", PeerNBMA: a("192.0.2.11"), State: api.SAEstablished, Local: a("192.0.2.1"), Remote: a("192.0.2.11"), Since: ago(time.Hour)},
			{Name: "dmvpn-172.16.0.12", PeerNBMA: a("172.16.0.12"), State: api.SAEstablished, Local: a("192.0.2.1"), Remote: a("203.0.113.7"), NATTPort: 4500, Since: ago(45 * time.Second)},
			{Name: "dmvpn-198.51.100.13", PeerNBMA: a("198.51.100.13"), State: api.SAConnecting, Local: a("192.0.2.1"), Remote: a("198.51.100.13"), Since: ago(5 * time.Second), Reason: "IKE_SA_INIT retransmit 2"},
		},
		BGP: api.BGPSummary{
			Enabled: true, RouterID: a("10.0.0.1"), AS: 65000,
			Neighbors: []api.BGPNeighbor{
				{Address: a("10.0.0.2"), AS: 65000, State: "Established", Since: ago(26 * time.Hour), Received: 3, Accepted: 3, Advertised: 3},
				{Address: a("10.0.0.11"), AS: 65000, State: "Established", Since: ago(time.Hour), Received: 1, Accepted: 1, Advertised: 1, Dynamic: true},
				{Address: a("10.0.0.12"), AS: 65000, State: "Established", Since: ago(30 * time.Second), Received: 2, Accepted: 2, Advertised: 1, Dynamic: true},
				{Address: a("10.0.0.13"), AS: 65000, State: "Active", Dynamic: true},
			},
		},
		Counters: api.Counters{
			"nhrp.rx.registration_request": 1532,
			"nhrp.tx.registration_reply":   1532,
			"nhrp.rx.resolution_request":   17,
			"nhrp.tx.traffic_indication":   9,
			"nhrp.drop.auth_failure":       2,
			"kernel.reconcile_errors":      0,
		},
	}
}

// SpokeFixture is a spoke with two NHSs (one waiting), a spoke-to-spoke
// shortcut and an incomplete resolution.
func SpokeFixture() Snapshot {
	nhs := []api.NHS{
		{NBMA: a("192.0.2.1"), Protocol: a("10.0.0.1"), Priority: 0, State: api.NHSResponding, Since: ago(3*24*time.Hour + 4*time.Hour), Expires: in(6*time.Minute + 40*time.Second)},
		{NBMA: a("192.0.2.2"), Dynamic: true, Priority: 10, State: api.NHSWaiting, Reason: "no reply to 4 requests; next in 16s", Since: ago(2 * time.Minute)},
	}
	return Snapshot{
		Status: api.Status{Ready: true, State: "running", Role: "spoke", Version: "v0.1.0-test", Started: ago(3*24*time.Hour + 4*time.Hour)},
		DMVPN: api.DMVPN{
			Interface: "gre1", Role: "spoke", Address: p("10.0.0.11/24"), NBMA: a("192.0.2.11"),
			Peers: []api.Peer{
				{NBMA: a("192.0.2.1"), Tunnel: a("10.0.0.1"), State: api.PeerUp, Since: ago(3*24*time.Hour + 4*time.Hour), Entries: 1, Attrs: []api.Attr{api.AttrStatic}},
				{NBMA: a("192.0.2.2"), State: api.PeerNHRP, Since: ago(2 * time.Minute), Entries: 1, Attrs: []api.Attr{api.AttrStatic}},
				{NBMA: a("172.16.0.12"), ObservedNBMA: a("203.0.113.7"), Tunnel: a("10.0.0.12"), State: api.PeerUp, Since: ago(12 * time.Second), Entries: 2, Attrs: []api.Attr{api.AttrDynamic, api.AttrNAT, api.AttrRouteInstalled}},
				{Tunnel: a("10.0.0.13"), State: api.PeerNHRP, Since: ago(time.Second), Entries: 1, Attrs: []api.Attr{api.AttrIncomplete}},
			},
			NHS: nhs,
		},
		Cache: []api.CacheEntry{
			{Type: api.CacheLocal, Prefix: p("10.0.0.11/32"), Tunnel: a("10.0.0.11"), NBMA: a("192.0.2.11")},
			{Type: api.CacheNHS, Prefix: p("10.0.0.1/32"), Tunnel: a("10.0.0.1"), NBMA: a("192.0.2.1"), Created: ago(76 * time.Hour), Expires: in(6*time.Minute + 40*time.Second), Flags: []api.CacheFlag{api.FlagUsed}},
			{Type: api.CacheCached, Prefix: p("10.0.0.12/32"), Tunnel: a("10.0.0.12"), NBMA: a("172.16.0.12"), ObservedNBMA: a("203.0.113.7"), Created: ago(12 * time.Second), Expires: in(9*time.Minute + 48*time.Second), Flags: []api.CacheFlag{api.FlagRouter, api.FlagAuthoritative, api.FlagNAT, api.FlagUsed}},
			{Type: api.CacheCached, Prefix: p("192.168.12.0/24"), Tunnel: a("10.0.0.12"), NBMA: a("172.16.0.12"), ObservedNBMA: a("203.0.113.7"), Created: ago(12 * time.Second), Expires: in(9*time.Minute + 48*time.Second), Flags: []api.CacheFlag{api.FlagAuthoritative, api.FlagUsed}},
			{Type: api.CacheIncomplete, Prefix: p("10.0.0.13/32"), Tunnel: a("10.0.0.13"), Created: ago(time.Second), Expires: in(2 * time.Second)},
			{Type: api.CacheNegative, Prefix: p("192.168.99.0/24"), Created: ago(20 * time.Second), Expires: in(10 * time.Second)},
		},
		NHS: nhs,
		Shortcuts: []api.Shortcut{
			{Prefix: p("192.168.12.0/24"), Via: a("10.0.0.12"), NBMA: a("172.16.0.12"), Created: ago(12 * time.Second), Expires: in(9*time.Minute + 48*time.Second), Used: true},
			{Prefix: p("192.168.14.0/23"), Via: a("10.0.0.14"), NBMA: a("198.51.100.14"), Created: ago(9 * time.Minute), Expires: in(time.Minute), Used: false},
		},
		SAs: []api.SA{
			{Name: "dmvpn-192.0.2.1", PeerNBMA: a("192.0.2.1"), State: api.SAEstablished, Local: a("192.0.2.11"), Remote: a("192.0.2.1"), Since: ago(76 * time.Hour),
				IKESAs: []api.IKESA{{ID: "12", State: "ESTABLISHED", Initiator: true, Local: ap("192.0.2.11:500"), Remote: ap("192.0.2.1:500"), RemoteID: "192.0.2.1",
					EncrAlg: "AES_GCM_16", EncrKeySize: 256, PRFAlg: "PRF_HMAC_SHA2_256", DHGroup: "CURVE_25519", Established: ago(3 * time.Hour), RekeyAt: in(time.Hour),
					Children: []api.ChildSA{{Name: "gre", ID: "31", State: "INSTALLED", Mode: "TRANSPORT", Protocol: "ESP", SPIIn: "c3a1b2f0", SPIOut: "cd09e4a7",
						EncrAlg: "AES_GCM_16", EncrKeySize: 256, Installed: ago(20 * time.Minute), RekeyAt: in(40 * time.Minute), Expires: in(46 * time.Minute),
						BytesIn: 1554800, BytesOut: 1302112, PacketsIn: 11420, PacketsOut: 10310,
						LocalTS: []string{"192.0.2.11/32[gre]"}, RemoteTS: []string{"192.0.2.1/32[gre]"}}}}}},
			{Name: "dmvpn-192.0.2.2", PeerNBMA: a("192.0.2.2"), State: api.SADown, Local: a("192.0.2.11"), Remote: a("192.0.2.2"), Since: ago(2 * time.Minute), Reason: "peer unreachable"},
			{Name: "dmvpn-172.16.0.12", PeerNBMA: a("172.16.0.12"), State: api.SAEstablished, Local: a("192.0.2.11"), Remote: a("203.0.113.7"), NATTPort: 4500, Since: ago(13 * time.Second)},
		},
		BGP: api.BGPSummary{
			Enabled: true, RouterID: a("10.0.0.11"), AS: 65000,
			Neighbors: []api.BGPNeighbor{
				{Address: a("10.0.0.1"), AS: 65000, State: "Established", Since: ago(76 * time.Hour), Received: 1, Accepted: 1, Advertised: 1},
				{Address: a("10.0.0.2"), AS: 65000, State: "Connect", Since: ago(2 * time.Minute)},
			},
		},
		Counters: api.Counters{
			"nhrp.tx.registration_request": 1095,
			"nhrp.rx.registration_reply":   1091,
			"nhrp.rx.traffic_indication":   3,
			"nhrp.tx.resolution_request":   3,
			"nhrp.rx.resolution_reply":     2,
		},
	}
}
