package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/dmvpnd/dmvpnd/controller/api"
	"github.com/dmvpnd/dmvpnd/e2e/lab"
)

// scIPsecYAML is the ipsec section of a node whose charon listens on
// socket.
func scIPsecYAML(socket string) string {
	return fmt.Sprintf("ipsec:\n  enabled: true\n  vici_socket: %s\n  auth: {method: psk, psk: lab-ipsec-not-a-secret}\n", socket)
}

// TestDMVPNNATIPsec is issue 9 scenario 4 with IPsec: a public spoke (s1)
// and two spokes (s2, s3) behind the same NAT address (router r2,
// masquerading to 198.51.100.102), every node with its own charon and
// dmvpnd's IPsec on (IKEv2 PSK; tunnel mode with the claimed NBMA as inner
// address for peers behind NAT, NAT-T). It checks, with real packets:
//   - all three register; the hub lists s2 and s3 with their own claimed
//     addresses, the same observed address and the NAT attribute;
//   - hub <-> s2 and hub <-> s3 pings work (each over its own SA), and the
//     underlay next to s1 and next to the NAT carries only ESP;
//   - Phase 3 direct paths: public s1 <-> NATed s2 (NAT-T, s1's GRE goes
//     to s2's claimed address inside the SA) and s2 <-> s3 behind the same
//     NAT (over their private addresses); the hub's tunnel stays quiet
//     while LAN-to-LAN traffic flows, and no cleartext GRE crosses the
//     underlay.
func TestDMVPNNATIPsec(t *testing.T) {
	natPublic := netip.MustParseAddr("198.51.100.102")
	l, n := scLab(t,
		scSpec{name: "hub", nbma: "198.51.100.1", tunnel: "10.0.0.1", hub: true},
		scSpec{name: "s1", nbma: "198.51.100.2", tunnel: "10.0.0.2", lan: "10.1.1.1/24"},
		scSpec{name: "s2", nbma: "192.168.2.2", tunnel: "10.0.0.3", lan: "10.1.2.1/24",
			behind: &lab.NAT{Name: "r2", Public: natPublic, Inside: netip.MustParsePrefix("192.168.2.1/24")}},
	)
	hub, s1, s2 := n["hub"], n["s1"], n["s2"]
	s3 := &dnode{name: "s3", nbma: netip.MustParseAddr("192.168.3.2"), tunnel: netip.MustParseAddr("10.0.0.4"),
		lan: netip.MustParsePrefix("10.1.3.1/24"), bin: hub.bin, dir: l.Scratch() + "/dmvpnd/s3"}
	scAddBehind(t, l, "r2", "eth2", netip.MustParsePrefix("192.168.3.1/24"), s3)
	t.Cleanup(func() {
		if t.Failed() {
			scLogTail(t, s3, 40)
		}
	})
	spokes := []*dnode{s1, s2, s3}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()

	for _, d := range []*dnode{hub, s1, s2, s3} {
		c := d.node.MustStartCharon(lab.CharonConfig{})
		d.extra = scIPsecYAML(c.Socket)
	}
	// The hub and the public spoke need a route covering the NATed spokes'
	// private NBMA addresses (the tunnel-mode inner destination; the GRE
	// packet is routed before XFRM takes it): a default route, as any
	// internet-facing host has.
	for _, d := range []*dnode{hub, s1} {
		d.node.MustRun("ip route replace default dev eth0")
	}
	// The hub replicates link-local multicast to its spokes (issue 18).
	scStart(t, l, hub, scConfig(hub, scHubNHRP("300s", true)+"  multicast: {dynamic: true}\n"))
	hub.waitReady(t, 60*time.Second)
	t0 := time.Now()
	for _, s := range spokes {
		scStart(t, l, s, scConfig(s, scSpokeNHRP("300s", true, "", scNHS{hub, 0})))
	}
	for _, s := range spokes {
		if _, err := scWaitNHS(ctx, s, 120*time.Second, map[netip.Addr]bool{hub.nbma: true}); err != nil {
			out, _ := s.ctl(ctx, "show ipsec")
			t.Fatalf("%v\n%s show ipsec:\n%s", err, s.name, out)
		}
		t.Logf("timing: %s registered over IPsec %v after start", s.name, scMS(time.Since(t0)))
		if rtt, ok := scRegistrationRTT(t, s, hub.nbma); ok {
			t.Logf("timing: %s first registration sent to registered (dmvpnd log, includes IKE) %v", s.name, scMS(rtt))
		}
	}
	peers, err := scWaitPeers(ctx, hub, 30*time.Second, map[netip.Addr]netip.Addr{s1.tunnel: s1.nbma, s2.tunnel: s2.nbma, s3.tunnel: s3.nbma})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []*dnode{s2, s3} {
		if p := peers[s.tunnel]; p.ObservedNBMA != natPublic || !slices.Contains(p.Attrs, api.AttrNAT) {
			t.Errorf("hub show dmvpn for %s: observed %v attrs %v, want observed %v with %q", s.name, p.ObservedNBMA, p.Attrs, natPublic, api.AttrNAT)
		}
	}

	// Hub <-> each spoke; s2 and s3 share the NAT's public address.
	pingHub := func(s *dnode) func(context.Context) error {
		return func(ctx context.Context) error {
			pctx, pcancel := context.WithTimeout(ctx, 30*time.Second)
			defer pcancel()
			if err := hub.node.WaitPing(pctx, s.tunnel); err != nil {
				return fmt.Errorf("hub -> %s: %w", s.name, err)
			}
			return s.node.Ping(pctx, hub.tunnel, 3)
		}
	}
	if err := l.CheckESPOnUnderlay(ctx, "s1", "esp-s1", 4, pingHub(s1)); err != nil {
		t.Errorf("hub <-> s1 over IPsec: %v", err)
	}
	err = l.CheckESPOnUnderlay(ctx, "r2", "esp-nat", 8, func(ctx context.Context) error {
		if err := pingHub(s2)(ctx); err != nil {
			return err
		}
		return pingHub(s3)(ctx)
	})
	if err != nil {
		t.Errorf("hub <-> s2, s3 behind one NAT over IPsec: %v", err)
	}
	// Multicast copies to the spokes behind the NAT go to their claimed
	// (inner) addresses through their SAs: only ESP crosses the NAT.
	err = l.CheckESPOnUnderlay(ctx, "r2", "esp-nat-mcast", 6, func(context.Context) error {
		natMulticast(ctx, t, hub, map[*dnode]netip.Addr{s1: s1.nbma, s2: s2.nbma, s3: s3.nbma})
		return nil
	})
	if err != nil {
		t.Errorf("multicast to s2, s3 behind one NAT over IPsec: %v", err)
	}

	// Phase 3 across the NAT and behind it.
	for _, s := range spokes {
		s.node.MustRun("ip route replace 10.1.0.0/16 via 10.0.0.1 dev gre1 onlink")
		hub.node.MustRun(fmt.Sprintf("ip route replace %s via %s dev gre1 onlink", s.lan.Masked(), s.tunnel))
	}
	for _, pair := range []struct {
		a, b         *dnode
		bNBMA, aNBMA netip.Addr
		port         string // underlay port to check for cleartext GRE
	}{
		{s1, s2, s2.nbma, s1.nbma, "s1"}, // public <-> NATed: GRE to the claimed address, inside the SA
		{s2, s3, s3.nbma, s2.nbma, ""},   // behind the same NAT: private addresses
	} {
		t1 := time.Now()
		if err := scWaitDirect(ctx, pair.a, pair.b, pair.bNBMA, pair.aNBMA); err != nil {
			for _, d := range []*dnode{pair.a, pair.b} {
				out, _ := d.ctl(ctx, "show ipsec")
				t.Logf("%s show ipsec:\n%s", d.name, out)
			}
			t.Fatalf("no direct path %s <-> %s: %v", pair.a.name, pair.b.name, err)
		}
		t.Logf("timing: first packet to direct path %s <-> %s %v", pair.a.name, pair.b.name, scMS(time.Since(t1)))
		check := func(ctx context.Context) error { return scNotViaHub(ctx, hub, pair.a, pair.b) }
		if pair.port != "" {
			err = l.CheckESPOnUnderlay(ctx, pair.port, "esp-"+pair.a.name+"-"+pair.b.name, 20, check)
		} else {
			err = check(ctx)
		}
		if err != nil {
			t.Errorf("%s <-> %s: %v", pair.a.name, pair.b.name, err)
		}
	}
	for _, d := range []*dnode{hub, s1, s2, s3} {
		out, _ := d.ctl(ctx, "show dmvpn")
		t.Logf("%s show dmvpn:\n%s", d.name, out)
		out, _ = d.ctl(ctx, "show ipsec")
		t.Logf("%s show ipsec:\n%s", d.name, out)
	}
}
