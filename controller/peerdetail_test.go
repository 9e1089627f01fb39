package controller

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/dmvpnd/dmvpnd/controller/api"
	"github.com/dmvpnd/dmvpnd/ipsec"
	"github.com/dmvpnd/dmvpnd/ipsec/ipsectest"
	"github.com/dmvpnd/dmvpnd/kernel"
	"github.com/dmvpnd/dmvpnd/kernel/kerneltest"
)

// phase3Run is a hub and two spokes after a Phase 3 shortcut from s1
// (protected by IPsec, its SAs on a fake) to s2's LAN, with traffic
// counted on s1's SAs.
type phase3Run struct {
	hub, s1, s2 *node
	sa          *ipsectest.Fake
}

// protectedShortcut takes s1, whose NHRP IPsec protects (its SAs on sa),
// to a Phase 3 shortcut to s2's LAN: its SA with the hub comes up and it
// registers, then a packet from its LAN to s2's hairpins at the hub, and
// the SA with s2 comes up as soon as s1 wants it (once), until s1 has the
// shortcut route.
func protectedShortcut(t *testing.T, hub, s1 *node, sa *ipsectest.Fake) {
	t.Helper()
	// Nothing registers before the SA.
	time.Sleep(time.Second)
	synctest.Wait()
	if !sa.SetStatus("198.51.100.1", ipsec.StatusUp, netip.MustParseAddrPort("198.51.100.1:500"), "") {
		t.Fatalf("hub SA not wanted; peers:\n%s", sa.Text())
	}
	time.Sleep(5 * time.Second)
	synctest.Wait()
	hub.kernel.InjectHairpin(kernel.Hairpin{InIfindex: 1, Packet: ipv4Packet("192.168.1.10", "192.168.2.20")})
	deadline := time.Now().Add(30 * time.Second)
	up := false
	for !s1.has("route 192.168.2.0/24") && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		up = up || sa.SetStatus("198.51.100.3", ipsec.StatusUp, netip.MustParseAddrPort("198.51.100.3:500"), "")
	}
	if !s1.has("route 192.168.2.0/24") {
		t.Fatalf("no shortcut; state:\n%s", s1.kernel.Render())
	}
}

func startPhase3(t *testing.T) phase3Run {
	t.Helper()
	netw := kerneltest.NewNetwork()
	sa := ipsectest.NewFake(nil)
	// The hub holds the spokes' groups' policies and s1 shapes its upload
	// (per-tunnel QoS, on the fake kernel), so show qos has both sides.
	hub := hubWithLANs(t, netw, qosGroupsYAML, withKernelQoS)
	// The hub listens before the spokes' first registrations, so that
	// their times (in the fixtures) do not depend on goroutine order.
	synctest.Wait()
	// The spokes announce NHRP groups (per-tunnel QoS), so the views show them.
	s1 := startSpoke(t, netw, 1, "  group: branch-2m\nqos:\n  egress: {rate: 10mbit}\n", func(d *Deps) { d.IPsec = fakeIPsec{sa} }, withKernelQoS)
	s2 := startSpoke(t, netw, 2, "  group: branch-10m\n")
	protectedShortcut(t, hub, s1, sa)
	time.Sleep(10 * time.Second)
	synctest.Wait()
	sa.SetTraffic("198.51.100.1", 48_210, 52_964, 402, 431)
	sa.SetTraffic("198.51.100.3", 8_400, 8_400, 100, 100)
	// What a flood toward s1 with a voice stream leaves in the hub's
	// classes, and s1's upload.
	s1NBMA, hubNBMA := netip.MustParseAddr("198.51.100.2"), netip.MustParseAddr("198.51.100.1")
	for _, c := range []struct {
		k     *kerneltest.Fake
		dst   netip.Addr
		class string
		n     kernel.QoSClassStats
	}{
		{hub.kernel, s1NBMA, "voice", kernel.QoSClassStats{Bytes: 47_600, Packets: 200}},
		{hub.kernel, s1NBMA, "default", kernel.QoSClassStats{Bytes: 2_160_900, Packets: 1_502, Drops: 5_642, Overlimits: 3_871, Backlog: 14_380, Qlen: 10}},
		{s1.kernel, hubNBMA, "default", kernel.QoSClassStats{Bytes: 52_964, Packets: 431}},
	} {
		if !c.k.CountQoS(c.dst, c.class, c.n) {
			t.Fatalf("no QoS toward %s to count %s in; state:\n%s", c.dst, c.class, c.k.Render())
		}
	}
	return phase3Run{hub: hub, s1: s1, s2: s2, sa: sa}
}

// withKernelQoS makes the node's fake kernel its QoS dependency, as
// cmd/dmvpnd does with the real one.
func withKernelQoS(d *Deps) { d.QoS = d.Dataplane.(*kerneltest.Fake) }

func (r phase3Run) stop(t *testing.T) { stopAll(t, r.s1, r.s2, r.hub) }

// testPhase3 runs f in a synctest bubble on a started phase3Run, stopped
// when f returns.
func testPhase3(t *testing.T, f func(t *testing.T, r phase3Run)) {
	synctest.Test(t, func(t *testing.T) {
		r := startPhase3(t)
		defer r.stop(t)
		f(t, r)
	})
}

// TestPeerDetails: show dmvpn peer finds a peer by tunnel or NBMA address
// and gathers its NHRP entry, neighbor entry, shortcut route and SA with
// its counters; an unknown address is not found.
func TestPeerDetails(t *testing.T) {
	testPhase3(t, func(t *testing.T, r phase3Run) {
		ctx := context.Background()
		byTunnel, err := r.s1.ctl.PeerDetails(ctx, netip.MustParseAddr("10.0.0.3"))
		if err != nil || len(byTunnel) != 1 {
			t.Fatalf("PeerDetails(10.0.0.3) = %+v, %v; want one peer", byTunnel, err)
		}
		byNBMA, err := r.s1.ctl.PeerDetails(ctx, netip.MustParseAddr("198.51.100.3"))
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(byTunnel, byNBMA, cmpAddrs); diff != "" {
			t.Errorf("by tunnel vs by NBMA (-tunnel +nbma):\n%s", diff)
		}
		d := byTunnel[0]
		if d.Neighbor == nil || d.Neighbor.NBMA != netip.MustParseAddr("198.51.100.3") {
			t.Errorf("neighbor %+v, want 10.0.0.3 lladdr 198.51.100.3", d.Neighbor)
		}
		if len(d.Routes) != 1 || d.Routes[0].Prefix != netip.MustParsePrefix("192.168.2.0/24") || d.Routes[0].Source != api.RouteShortcut {
			t.Errorf("routes %+v, want the shortcut to 192.168.2.0/24", d.Routes)
		}
		if d.Path != "up" || len(d.Cache) != 1 {
			t.Errorf("path %q, cache %+v; want up and one entry", d.Path, d.Cache)
		}
		if d.SA == nil || len(d.SA.IKESAs) != 1 || len(d.SA.IKESAs[0].Children) != 1 ||
			d.SA.IKESAs[0].Children[0].BytesIn != 8_400 || d.SA.IKESAs[0].Children[0].SPIIn == "" {
			t.Errorf("SA %+v, want one child with SPIs and 8400 bytes in", d.SA)
		}
		if _, err := r.s1.ctl.PeerDetails(ctx, netip.MustParseAddr("10.0.0.99")); !errors.Is(err, api.ErrNotFound) {
			t.Errorf("unknown peer: %v, want ErrNotFound", err)
		}
		all, err := r.s1.ctl.PeerDetails(ctx, netip.Addr{})
		if err != nil || len(all) != 2 {
			t.Errorf("all peers = %d, %v; want the NHS and s2", len(all), err)
		}
	})
}

// TestClearPeer: on a spoke, clearing a peer drops its resolved entry and
// shortcut and releases its IPsec peer; an NHS is kept and said so; on the
// hub, clearing a registration drops the client's neighbor entry.
func TestClearPeer(t *testing.T) {
	testPhase3(t, func(t *testing.T, r phase3Run) {
		ctx := context.Background()
		res, err := r.s1.ctl.ClearPeer(ctx, netip.MustParseAddr("198.51.100.3"))
		if err != nil {
			t.Fatal(err)
		}
		want := api.PeerClear{Resolved: 1, Shortcuts: 1, Released: []netip.Addr{netip.MustParseAddr("198.51.100.3")},
			Actions: []string{"cleared the resolved entry of 10.0.0.3 with 1 shortcut(s)",
				"released IPsec peer 198.51.100.3: its SAs are deleted"}}
		if diff := cmp.Diff(want, res, cmpAddrs); diff != "" {
			t.Errorf("ClearPeer (-want +got):\n%s", diff)
		}
		synctest.Wait()
		if r.s1.has("route 192.168.2.0/24") {
			t.Errorf("shortcut route left after clearing its peer:\n%s", r.s1.kernel.Render())
		}
		res, err = r.s1.ctl.ClearPeer(ctx, netip.MustParseAddr("10.0.0.1"))
		if err != nil || res.Registrations+res.Resolved != 0 || len(res.Actions) != 1 {
			t.Errorf("ClearPeer(NHS) = %+v, %v; want it kept", res, err)
		}
		if _, err := r.s1.ctl.ClearPeer(ctx, netip.MustParseAddr("10.0.0.99")); !errors.Is(err, api.ErrNotFound) {
			t.Errorf("unknown peer: %v, want ErrNotFound", err)
		}

		if n, err := r.hub.ctl.ClearRegistration(ctx, netip.MustParseAddr("198.51.100.3")); n != 1 || err != nil {
			t.Errorf("ClearRegistration = %d, %v; want 1", n, err)
		}
		synctest.Wait()
		if r.hub.has("neigh 10.0.0.3") {
			t.Errorf("hub kept the neighbor entry of a cleared registration:\n%s", r.hub.kernel.Render())
		}
		if _, err := r.hub.ctl.ClearRegistration(ctx, netip.MustParseAddr("10.0.0.3")); !errors.Is(err, api.ErrNotFound) {
			t.Errorf("second ClearRegistration: %v, want ErrNotFound", err)
		}
	})
}

var cmpAddrs = cmp.Options{
	cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
	cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }),
	cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b }),
}
