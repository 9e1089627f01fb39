package e2e

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestPkgParsers checks TestDebInstall's parsers of swanctl, ip xfrm and
// dmvpnctl reload output and its underlay prefix (no lab).
func TestPkgParsers(t *testing.T) {
	hub, spoke := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("198.51.100.11")
	raw := "list-sa event {dmvpn-peer-192.0.2.1 {uniqueid=3 version=2 state=DELETING local-host=198.51.100.11 local-port=500 remote-host=192.0.2.1 remote-port=500 initiator-spi=aa responder-spi=bb child-sas {}}}\n" +
		"list-sa event {dmvpn-peer-192.0.2.2 {uniqueid=4 version=2 state=ESTABLISHED local-host=198.51.100.11 remote-host=192.0.2.2 remote-port=500 initiator-spi=cc responder-spi=dd child-sas {gre-5 {name=gre uniqueid=5 state=INSTALLED mode=TRANSPORT}}}}\n" +
		"list-sa event {dmvpn-peer-192.0.2.1 {uniqueid=7 version=2 state=ESTABLISHED local-host=198.51.100.11 remote-host=192.0.2.1 remote-port=500 initiator-spi=ee responder-spi=ff child-sas {gre-8 {name=gre uniqueid=8 state=INSTALLED mode=TRANSPORT}}}}\n"
	want := pkgSAState{IKEID: "7", IKESPIs: "ee_i ff_r", Established: true, Children: 1}
	if diff := cmp.Diff(want, pkgParseIKE(raw, hub)); diff != "" {
		t.Errorf("pkgParseIKE (-want +got):\n%s", diff)
	}
	if got := pkgParseIKE(raw, netip.MustParseAddr("192.0.2.9")); got.Established || got.IKEID != "" {
		t.Errorf("pkgParseIKE of an absent peer = %+v", got)
	}

	xfrm := "src 192.0.2.1 dst 198.51.100.11\n\tproto esp spi 0xc0000001 reqid 1 mode transport\n\treplay-window 0\n" +
		"src 198.51.100.11 dst 192.0.2.1\n\tproto esp spi 0xc0000002 reqid 1 mode transport\n" +
		"src 198.51.100.11 dst 192.0.2.2\n\tproto esp spi 0xc0000003 reqid 2 mode transport\n"
	if diff := cmp.Diff([]string{"192.0.2.1>198.51.100.11 0xc0000001", "198.51.100.11>192.0.2.1 0xc0000002"}, pkgParseESP(xfrm, spoke, hub)); diff != "" {
		t.Errorf("pkgParseESP (-want +got):\n%s", diff)
	}

	table := "Configuration reloaded: 2 changes, 1 need a restart\n\nKey             Change        Result\n" +
		"--------------  ------------  -------\ntunnel.name     gre1 -> gre9  needs restart: the tunnel interface is created at start\n" +
		"ipsec.auth.psk  changed       applied\n"
	for _, c := range []struct {
		key, result string
		want        bool
	}{
		{"tunnel.name", "needs restart", true},
		{"tunnel.name", "applied", false},
		{"ipsec.auth.psk", "applied", true},
		{"ipsec.auth", "applied", false},
	} {
		if got := pkgChangeListed(table, c.key, c.result); got != c.want {
			t.Errorf("pkgChangeListed(%s, %s) = %t, want %t", c.key, c.result, got, c.want)
		}
	}

	for _, c := range []struct {
		addrs []netip.Addr
		want  string
	}{
		{[]netip.Addr{hub, netip.MustParseAddr("192.0.2.2"), spoke}, "192.0.0.0/5"},
		{[]netip.Addr{hub, netip.MustParseAddr("192.0.2.2")}, "192.0.2.0/30"},
		{[]netip.Addr{hub}, "192.0.2.1/32"},
	} {
		if got := pkgCommonPrefix(c.addrs...); got.String() != c.want {
			t.Errorf("pkgCommonPrefix(%v) = %v, want %s", c.addrs, got, c.want)
		}
	}
}
