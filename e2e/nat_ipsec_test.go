package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
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
//   - issue 13 item 7: s4 behind another NAT (r4, 198.51.100.104) with
//     the same private NBMA as s2 (192.168.2.2) registers after s2; the
//     hub lists both with their own post-NAT addresses, steers s4's GRE
//     through an alias (ipsec.nat_alias_prefix), both ping the hub
//     continuously without loss with only ESP across either NAT, the
//     hub's multicast copies reach s4 at its alias, and neither can
//     deregister or purge the other through its own SA (the hub's state
//     is unchanged, every refusal counted).
func TestDMVPNNATIPsec(t *testing.T) {
	natPublic := netip.MustParseAddr("198.51.100.102")
	nat2Public := netip.MustParseAddr("198.51.100.104")
	forge, err := forgeBinary()
	if err != nil {
		t.Fatal(err)
	}
	l, n := scLab(t,
		scSpec{name: "hub", nbma: "198.51.100.1", tunnel: "10.0.0.1", hub: true},
		scSpec{name: "s1", nbma: "198.51.100.2", tunnel: "10.0.0.2", lan: "10.1.1.1/24"},
		scSpec{name: "s2", nbma: "192.168.2.2", tunnel: "10.0.0.3", lan: "10.1.2.1/24",
			behind: &lab.NAT{Name: "r2", Public: natPublic, Inside: netip.MustParsePrefix("192.168.2.1/24")}},
		scSpec{name: "s4", nbma: "192.168.2.2", tunnel: "10.0.0.5", lan: "10.1.4.1/24",
			behind: &lab.NAT{Name: "r4", Public: nat2Public, Inside: netip.MustParsePrefix("192.168.2.1/24")}},
	)
	hub, s1, s2, s4 := n["hub"], n["s1"], n["s2"], n["s4"]
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

	for _, d := range []*dnode{hub, s1, s2, s3, s4} {
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
	// s4 starts once s2 holds 192.168.2.2: its SA is the second with that
	// inner address, and the hub gives it the first alias.
	scStart(t, l, s4, scConfig(s4, scSpokeNHRP("300s", true, "", scNHS{hub, 0})))
	if _, err := scWaitNHS(ctx, s4, 120*time.Second, map[netip.Addr]bool{hub.nbma: true}); err != nil {
		out, _ := s4.ctl(ctx, "show ipsec")
		t.Fatalf("%v\ns4 show ipsec:\n%s", err, out)
	}
	t.Logf("timing: s4 (s2's private NBMA behind another NAT) registered over IPsec %v after start", scMS(time.Since(t0)))
	peers, err := scWaitPeers(ctx, hub, 30*time.Second, map[netip.Addr]netip.Addr{s1.tunnel: s1.nbma, s2.tunnel: s2.nbma, s3.tunnel: s3.nbma, s4.tunnel: s4.nbma})
	if err != nil {
		t.Fatal(err)
	}
	for s, public := range map[*dnode]netip.Addr{s2: natPublic, s3: natPublic, s4: nat2Public} {
		if p := peers[s.tunnel]; p.ObservedNBMA != public || !slices.Contains(p.Attrs, api.AttrNAT) {
			t.Errorf("hub show dmvpn for %s: observed %v attrs %v, want observed %v with %q", s.name, p.ObservedNBMA, p.Attrs, public, api.AttrNAT)
		}
	}
	natSamePrivate(ctx, t, l, forge, hub, s2, s4, map[*dnode]netip.Addr{s2: s2.nbma, s4: natAlias}, map[*dnode]string{s2: "r2", s4: "r4"}, true)

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
		natMulticast(ctx, t, hub, map[*dnode]netip.Addr{s1: s1.nbma, s2: s2.nbma, s3: s3.nbma, s4: natAlias})
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
	for _, d := range []*dnode{hub, s1, s2, s3, s4} {
		out, _ := d.ctl(ctx, "show dmvpn")
		t.Logf("%s show dmvpn:\n%s", d.name, out)
		out, _ = d.ctl(ctx, "show ipsec")
		t.Logf("%s show ipsec:\n%s", d.name, out)
	}
}

// natAlias is the GRE address the hub gives the second SA with one private
// NBMA: the first of ipsec.nat_alias_prefix (default 198.18.0.0/15).
var natAlias = netip.MustParseAddr("198.18.0.1")

// natSamePrivate is issue 13 item 7: a (registered first) and b, behind
// different NATs (routers ports[a], ports[b]) with the same private NBMA.
// The hub's gre1 sends each one's GRE to gre[d] (with IPsec: a's private
// address and b's alias; without: each NAT's public address); both ping
// the hub continuously without loss (with IPsec only ESP crossing either
// NAT); each sends (through its own SA with IPsec) a deregistration and a
// purge of the other's tunnel address: the hub refuses and counts each and
// its state (show dmvpn, cache, neighbours, routes, SAs) does not change.
func natSamePrivate(ctx context.Context, t *testing.T, l *lab.Lab, forge string, hub, a, b *dnode, gre map[*dnode]netip.Addr, ports map[*dnode]string, ipsec bool) {
	t.Helper()
	neigh := hub.node.MustRun("ip -4 neigh show dev gre1")
	for _, d := range []*dnode{a, b} {
		if want := d.tunnel.String() + " lladdr " + gre[d].String() + " "; !strings.Contains(neigh, want) {
			t.Errorf("hub gre1 neighbours: no %q in:\n%s", want, neigh)
		}
	}
	lossless := func(d *dnode) error {
		res, err := d.node.Exec(ctx, fmt.Sprintf("ping -n -q -c 50 -i 0.1 -W 2 %s", hub.tunnel))
		if err != nil {
			return err
		}
		if res.Exit != 0 || !strings.Contains(string(res.Stdout), " 0% packet loss") {
			return fmt.Errorf("%s -> hub: %s", d.name, res.Stdout)
		}
		return nil
	}
	both := func(ctx context.Context) error {
		errs := make(chan error, 2)
		for _, d := range []*dnode{a, b} {
			go func() { errs <- lossless(d) }()
		}
		return errors.Join(<-errs, <-errs)
	}
	err := both(ctx)
	if ipsec {
		err = l.CheckESPOnUnderlay(ctx, ports[a], "esp-same-private-"+ports[a], 50, func(ctx context.Context) error {
			return l.CheckESPOnUnderlay(ctx, ports[b], "esp-same-private-"+ports[b], 50, both)
		})
	}
	if err != nil {
		t.Errorf("%s and %s (same private NBMA, different NATs) -> hub: %v", a.name, b.name, err)
	}

	before, err := advSnapshot(ctx, hub)
	if err != nil {
		t.Fatal(err)
	}
	r := &advRunner{t: t, forge: forge}
	hubDrop := func(drop string) []advWant { return []advWant{{hub, "nhrp_drop_" + drop, 1, false}} }
	for _, x := range []struct{ from, victim *dnode }{{b, a}, {a, b}} {
		global := fmt.Sprintf(" -to %s -src-nbma %s -src-proto %s -dst-proto %s", hub.nbma, x.from.nbma, x.from.tunnel, hub.tunnel)
		r.run(ctx, x.from.name+" deregisters "+x.victim.name, advCmd{node: x.from.node, global: global,
			cmd: fmt.Sprintf("register -cie %s,%s,0", x.victim.tunnel, x.victim.nbma)}, hubDrop("owned_by_another_peer"))
		r.run(ctx, x.from.name+" purges "+x.victim.name, advCmd{node: x.from.node, global: global,
			cmd: fmt.Sprintf("purge -purge %s", x.victim.tunnel)}, hubDrop("wrong_responder"))
	}
	if out, err := hub.node.Run(ctx, "nft list table ip dmvpnd_natsteer; ip xfrm policy list proto gre"); ipsec && err == nil {
		t.Logf("hub NAT steering and GRE policies:\n%s", out.Stdout)
	}
	after, err := advSnapshot(ctx, hub)
	if err != nil {
		t.Fatal(err)
	}
	if before != after {
		t.Errorf("hub state changed by the cross deregistrations and purges:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	for _, d := range []*dnode{a, b} {
		if _, err := scWaitNHS(ctx, d, 10*time.Second, map[netip.Addr]bool{hub.nbma: true}); err != nil {
			t.Errorf("%s after the attempts: %v", d.name, err)
		}
	}
}
