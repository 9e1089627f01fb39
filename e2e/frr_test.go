package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dmvpnd/dmvpnd/controller/api"
	"github.com/dmvpnd/dmvpnd/e2e/lab"
)

// The FRR interop scenarios (issue 10). Each one captures the whole
// underlay: without IPsec tshark and dmvpnctl nhrp decode must read every
// NHRP packet in it cleanly, with IPsec it must hold only IKE and ESP. Each
// checks the data path with real packets (the hub's tunnel stops receiving
// the flow once the shortcut is up) and the FRR side's own view through
// vtysh. FRR quirks found here are in nhrp/interop.md.

// frrAllNHRPTypes are the packet types every Phase 3 scenario puts on the wire.
var frrAllNHRPTypes = []string{"registration-request", "registration-reply", "traffic-indication", "resolution-request", "resolution-reply"}

// frrPingHub checks hub-spoke traffic over the tunnel both ways.
func frrPingHub(ctx context.Context, t *testing.T, il *frrLab) {
	t.Helper()
	hub := il.hub()
	for _, s := range il.spokes() {
		if err := s.node.Ping(ctx, hub.tunnel, 2); err != nil {
			t.Fatalf("%s -> hub: %v", s.name, err)
		}
		if err := hub.node.Ping(ctx, s.tunnel, 2); err != nil {
			t.Fatalf("hub -> %s: %v", s.name, err)
		}
	}
}

// frrShortcutBothWays runs first traffic from src to dst, waits until both
// have a shortcut to the other (echo replies hairpin at the hub too) and
// proves the flow then goes direct.
func frrShortcutBothWays(ctx context.Context, t *testing.T, il *frrLab, src, dst *frrSite) {
	t.Helper()
	took, err := il.waitShortcuts(ctx, src, dst, 30*time.Second, [2]*frrSite{src, dst}, [2]*frrSite{dst, src})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("timing: %s -> %s first packet to both shortcuts %v", src.name, dst.name, took.Round(time.Millisecond))
	if err := il.checkDirect(ctx, src, dst); err != nil {
		t.Fatal(err)
	}
}

// frrCheckShortcut checks FRR's own view of a shortcut from s to dst.
func frrCheckShortcut(ctx context.Context, t *testing.T, s, dst *frrSite) {
	t.Helper()
	out, err := s.f.vtysh(ctx, "show ip nhrp shortcut")
	if err != nil {
		t.Fatal(err)
	}
	if !frrLineWith(out, dst.lan.Masked().String(), dst.tunnel.String()) {
		t.Errorf("%s show ip nhrp shortcut: no %s via %s:\n%s", s.name, dst.lan.Masked(), dst.tunnel, out)
	}
	out, err = s.f.vtysh(ctx, "show ip nhrp cache")
	if err != nil {
		t.Fatal(err)
	}
	if !frrLineWith(out, dst.tunnel.String(), dst.nbma.String()) {
		t.Errorf("%s show ip nhrp cache: no entry %s -> %s:\n%s", s.name, dst.tunnel, dst.nbma, out)
	}
	t.Logf("%s show ip nhrp cache:\n%s", s.name, out)
}

// frrCheckSpokeRegistered checks FRR's view of its (dynamic) NHS: the hub's
// protocol address was learned from the registration reply.
func frrCheckSpokeRegistered(ctx context.Context, t *testing.T, s, hub *frrSite) {
	t.Helper()
	out, err := s.f.vtysh(ctx, "show ip nhrp nhs")
	if err != nil {
		t.Fatal(err)
	}
	if !frrLineWith(out, hub.nbma.String(), hub.tunnel.String()) {
		t.Errorf("%s show ip nhrp nhs: hub %s / %s not learned:\n%s", s.name, hub.nbma, hub.tunnel, out)
	}
	out, err = s.f.vtysh(ctx, "show dmvpn")
	if err != nil {
		t.Fatal(err)
	}
	if !frrLineWith(out, s.nbma.String(), hub.nbma.String()) {
		t.Errorf("%s show dmvpn: no connection to the hub %s:\n%s", s.name, hub.nbma, out)
	}
}

// frrCheckDMVPNDPeer checks that a dmvpnd node lists peer in show dmvpn.
func frrCheckDMVPNDPeer(ctx context.Context, t *testing.T, s, peer *frrSite) {
	t.Helper()
	v, err := s.d.showDMVPN(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(v.Peers, func(p api.Peer) bool { return p.Tunnel == peer.tunnel && p.NBMA == peer.nbma }) {
		t.Errorf("%s show dmvpn: no peer %s (%s): %+v", s.name, peer.name, peer.nbma, v.Peers)
	}
}

// begin starts a scenario of at most timeout: a capture of the underlay
// (the pcap named name, with "-ipsec" appended for an IPsec lab), then
// every site, and proves hub-spoke traffic both ways. The scenario's
// time is logged when the test ends.
func (il *frrLab) begin(t *testing.T, name string, timeout time.Duration) (context.Context, *frrCapture) {
	t.Helper()
	t0 := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(func() {
		cancel()
		t.Logf("timing: scenario %v", time.Since(t0).Round(time.Millisecond))
	})
	if il.ipsec {
		name += "-ipsec"
	}
	capt, err := frrStartCapture(ctx, il.l, name)
	if err != nil {
		t.Fatal(err)
	}
	il.start(ctx)
	frrPingHub(ctx, t, il)
	return ctx, capt
}

// frrFinishCapture checks the scenario's capture decodes cleanly.
func frrFinishCapture(ctx context.Context, t *testing.T, c *frrCapture) {
	t.Helper()
	counts, err := frrDecodeCheck(ctx, c, frrAllNHRPTypes...)
	if err != nil {
		t.Error(err)
		return
	}
	t.Logf("capture %s decodes cleanly (tshark and dmvpnctl nhrp decode): %v", c.path, counts)
}

// TestFRRHubDMVPNDSpokes: an FRR hub (nhrpd with redirect, iptables NFLOG
// hairpin trigger) and two dmvpnd spokes, as two subtests on one lab, the
// daemons started afresh for each: plain GRE, and ipsec, every GRE packet
// protected (the FRR hub by strongSwan alone: trap mode, transport,
// dynamic[gre], PSK, FRR itself knows nothing of IPsec; the dmvpnd spokes
// by their own charon driven by dmvpnd over VICI). Both spokes register
// (FRR's cache lists them as dynamic entries), hub-spoke pings pass, and
// the FRR hub's traffic indications make the spokes build a shortcut to
// each other (with IPsec over the SA dmvpnd negotiates); the flow then
// bypasses the hub. plain: the FRR hub's show dmvpn lists both NBMA
// pairs, a resolution nobody can answer ends in a negative entry, and the
// capture decodes cleanly. ipsec: the hub's charon lists an established
// SA with each spoke, and only IKE and ESP cross the underlay.
func TestFRRHubDMVPNDSpokes(t *testing.T) {
	newFRRLab(t, frrKindFRR, frrKindDMVPND, frrKindDMVPND).variants(t, frrHubDMVPNDSpokes)
}

func frrHubDMVPNDSpokes(t *testing.T, il *frrLab) {
	ipsec := il.ipsec
	ctx, capt := il.begin(t, "frr-hub", 5*time.Minute)
	hub, s1, s2 := il.sites[0], il.sites[1], il.sites[2]
	frrShortcutBothWays(ctx, t, il, s1, s2)

	out, err := hub.f.vtysh(ctx, "show ip nhrp cache")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range il.spokes() {
		if !frrLineWith(out, "dynamic", s.tunnel.String(), s.nbma.String()) {
			t.Errorf("hub show ip nhrp cache: no dynamic entry %s -> %s:\n%s", s.tunnel, s.nbma, out)
		}
	}
	t.Logf("hub show ip nhrp cache:\n%s", out)
	if ipsec {
		// The FRR hub's charon has an SA with each spoke.
		res, err := hub.f.charon.Swanctl(ctx, "--list-sas")
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range il.spokes() {
			if !strings.Contains(string(res.Stdout), "ESTABLISHED") || !strings.Contains(string(res.Stdout), s.nbma.String()) {
				t.Errorf("hub swanctl --list-sas: no established SA with %s:\n%s", s.nbma, res.Stdout)
			}
		}
	} else {
		out, err = hub.f.vtysh(ctx, "show dmvpn")
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range il.spokes() {
			if !frrLineWith(out, hub.nbma.String(), s.nbma.String()) {
				t.Errorf("hub show dmvpn: no %s:\n%s", s.nbma, out)
			}
		}
	}
	frrCheckDMVPNDPeer(ctx, t, s1, s2)
	frrCheckDMVPNDPeer(ctx, t, s2, s1)
	if ipsec {
		frrCheckESPOnly(ctx, t, capt)
	} else {
		t.Run("unknown destination", func(t *testing.T) {
			frrUnknownDestination(ctx, t, s1)
		})
		frrFinishCapture(ctx, t, capt)
	}
}

// frrUnknownDestination makes dmvpnd spoke s resolve a tunnel address
// nobody registered (a neighbour miss on the tunnel subnet): the FRR hub
// cannot answer it, and dmvpnd must take FRR's refusal (or silence) as a
// negative cache entry and stay registered.
func frrUnknownDestination(ctx context.Context, t *testing.T, s *frrSite) {
	t.Helper()
	unknown := "10.0.0.99"
	t0 := time.Now()
	_, _ = s.node.Exec(ctx, "ping -n -c 1 -W 1 "+unknown) // expected to fail
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var last string
	err := lab.WaitFor(wctx, 300*time.Millisecond, func(ctx context.Context) error {
		entries, err := scCache(ctx, s.d)
		if err != nil {
			return err
		}
		last = fmt.Sprintf("%+v", entries)
		for _, e := range entries {
			if e.Prefix.Addr().String() == unknown && e.Type == api.CacheNegative {
				return nil
			}
		}
		return fmt.Errorf("no negative entry for %s yet", unknown)
	})
	if err != nil {
		t.Fatalf("%s: %v; cache:\n%s", s.name, err, last)
	}
	t.Logf("timing: negative entry for %s after %v", unknown, time.Since(t0).Round(time.Millisecond))
	v, err := s.d.showDMVPN(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(v.NHS) != 1 || v.NHS[0].State != api.NHSResponding {
		t.Errorf("%s NHS after the failed resolution: %+v, want one responding", s.name, v.NHS)
	}
}

// TestFRRSpokesDMVPNDHub: a dmvpnd hub and two FRR spokes (dynamic NHS,
// shortcut, no-unique), as two subtests on one lab, the daemons started
// afresh for each: plain GRE, and ipsec, every GRE packet protected (the
// FRR spokes by strongSwan alone, in trap mode: their first registration
// packet starts IKE towards the hub, their first packet to each other IKE
// between them; the dmvpnd hub by its own charon driven by dmvpnd over
// VICI, accepting the FRR spokes' SAs). Both register with dmvpnd, and
// dmvpnd's traffic indications make the FRR spokes resolve each other
// (FRR's show ip nhrp shortcut); the flow then bypasses the hub. plain:
// the capture decodes cleanly. ipsec: only IKE and ESP cross the
// underlay, and the OSPF subtest (ospfMixedCloud) runs on the cloud.
func TestFRRSpokesDMVPNDHub(t *testing.T) {
	il := newFRRLab(t, frrKindDMVPND, frrKindFRR, frrKindFRR, frrKindDMVPND)
	// The OSPF subtest's multicast replication, on from the start
	// (nhrp.multicast is not reloadable).
	il.sites[0].d.multicast, il.sites[0].d.metrics = "{dynamic: true}", obsMetricsListen
	il.sites[3].d.multicast = "{nhs: true}"
	il.variants(t, frrSpokesDMVPNDHub)
}

func frrSpokesDMVPNDHub(t *testing.T, il *frrLab) {
	ipsec := il.ipsec
	ctx, capt := il.begin(t, "dmvpnd-hub-frr-spokes", 10*time.Minute)
	hub, s1, s2, s3 := il.sites[0], il.sites[1], il.sites[2], il.sites[3]
	frrShortcutBothWays(ctx, t, il, s1, s2)

	frrCheckSpokeRegistered(ctx, t, s1, hub)
	frrCheckSpokeRegistered(ctx, t, s2, hub)
	frrCheckShortcut(ctx, t, s1, s2)
	frrCheckShortcut(ctx, t, s2, s1)
	out, _ := hub.d.ctl(ctx, "show dmvpn")
	t.Logf("hub show dmvpn:\n%s", out)
	if ipsec { // OSPF over the plain cloud is the same without ESP
		t.Run("OSPF", func(t *testing.T) { ospfMixedCloud(ctx, t, il, s1, s3) })
	}
	if ipsec {
		out, _ := hub.d.ctl(ctx, "show ipsec")
		t.Logf("hub show ipsec:\n%s", out)
		frrCheckESPOnly(ctx, t, capt)
	} else {
		frrFinishCapture(ctx, t, capt)
	}
}

// frrCheckESPOnly stops the capture and checks that no cleartext GRE
// crossed the underlay, only IKE and ESP.
func frrCheckESPOnly(ctx context.Context, t *testing.T, capt *frrCapture) {
	t.Helper()
	if err := capt.stop(ctx); err != nil {
		t.Fatal(err)
	}
	counts, err := lab.ReadPcapCounts(capt.path)
	if err != nil {
		t.Fatal(err)
	}
	if err := lab.CheckESPOnly(counts, 40); err != nil {
		t.Errorf("underlay %s: %v", capt.path, err)
	}
	t.Logf("underlay: %d packets, ESP %d, UDP %d (IKE), GRE %d", counts.Total, counts.ByProto[lab.ProtoESP], counts.ByProto[lab.ProtoUDP], counts.ByProto[lab.ProtoGRE])
}

// TestFRRMixedSpokes: a dmvpnd hub with FRR and dmvpnd spokes. Two
// independent pairs prove the shortcut in both directions of first
// traffic: s1 (FRR) sends first to s2 (dmvpnd); s4 (dmvpnd) sends first to
// s3 (FRR).
func TestFRRMixedSpokes(t *testing.T) {
	il := newFRRLab(t, frrKindDMVPND, frrKindFRR, frrKindDMVPND, frrKindFRR, frrKindDMVPND)
	ctx, capt := il.begin(t, "mixed", 5*time.Minute)
	s := il.sites
	for _, pair := range []struct {
		name          string
		first, second *frrSite
	}{
		{"FRR-first", s[1], s[2]},
		{"dmvpnd-first", s[4], s[3]},
	} {
		t.Run(pair.name, func(t *testing.T) {
			frrShortcutBothWays(ctx, t, il, pair.first, pair.second)
			frr, dm := pair.first, pair.second
			if frr.f == nil {
				frr, dm = dm, frr
			}
			frrCheckSpokeRegistered(ctx, t, frr, il.hub())
			frrCheckShortcut(ctx, t, frr, dm)
			frrCheckDMVPNDPeer(ctx, t, dm, frr)
		})
	}
	frrFinishCapture(ctx, t, capt)
}
