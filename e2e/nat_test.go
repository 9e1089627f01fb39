package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dmvpnd/dmvpnd/controller/api"
	"github.com/dmvpnd/dmvpnd/e2e/lab"
)

// TestDMVPNNAT is issue 9 scenario 4: a public spoke (s1) and spokes
// behind NAT routers, Phase 3, the hub replicating link-local multicast
// (nhrp.multicast dynamic, issue 18), as two variants on one lab, each
// from a fresh start of every daemon: plain GRE, and IPsec (every node
// with its own charon, IKEv2 PSK; tunnel mode with the claimed NBMA as
// inner address for peers behind NAT, NAT-T). s2 is behind r2
// (masquerading to 198.51.100.102); s4 behind r4 (198.51.100.104) with
// s2's private NBMA (192.168.2.2); with IPsec s3 is behind r2 too, so s2
// and s3 share one NAT address (plain GRE has no ports to tell them
// apart). Each variant checks, with real packets:
//   - every spoke registers through its NAT (s4 after s2: with IPsec its
//     SA is the second with that inner address); the hub's show dmvpn
//     lists each NATed spoke with its claimed NBMA, its own NAT's public
//     address as observed NBMA and the NAT attribute, and s1 without;
//   - hub <-> spoke tunnel pings work both ways; with IPsec only ESP
//     crosses s1's port and the NAT's;
//   - the hub's multicast copies (three link-local packets sent out of
//     its gre1) reach every spoke at the address its GRE goes to (plain:
//     each NAT's public address; IPsec: the claimed addresses through the
//     SAs, s4's alias, only ESP crossing the NAT), counted per
//     destination in show counters with no send error;
//   - issue 13 item 7 (natSamePrivate): s2 and s4 with the same private
//     NBMA, each with its own hub neighbour entry (plain: at its NAT;
//     IPsec: s2's claimed address, s4's alias from
//     ipsec.nat_alias_prefix), both ping the hub continuously without
//     loss, and neither can deregister or purge the other (refusals
//     counted, the hub's state unchanged);
//   - LAN-to-LAN traffic between s1 and s2 first crosses the hub, then a
//     Phase 3 direct path forms across the NAT: each side's neighbour
//     entry points at the other's reachable address (plain: s1 -> the
//     NAT's public address; IPsec: s2's claimed address inside the SA)
//     and the flow bypasses the hub (its gre1 receive counter stays flat;
//     with IPsec only ESP on s1's port). This relies on the NATed side
//     opening the path (the public side waits for its probe, see the
//     engine's awaitsPeer). With IPsec s2 and s3 behind the same NAT get
//     a direct path over their private addresses too.
func TestDMVPNNAT(t *testing.T) {
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
	hub := n["hub"]
	s3 := &dnode{name: "s3", nbma: netip.MustParseAddr("192.168.3.2"), tunnel: netip.MustParseAddr("10.0.0.4"),
		lan: netip.MustParsePrefix("10.1.3.1/24"), bin: hub.bin, dir: l.Scratch() + "/dmvpnd/s3"}
	scAddBehind(t, l, "r2", "eth2", netip.MustParsePrefix("192.168.3.1/24"), s3)
	t.Cleanup(func() {
		if t.Failed() {
			scLogTail(t, s3, 40)
		}
	})
	nodes := []*dnode{hub, n["s1"], n["s2"], s3, n["s4"]}
	for _, v := range []struct {
		name  string
		ipsec scIPsec
	}{{"plain", scIPsecNone}, {"psk", scIPsecPSK}} {
		if !scRunVariant(t, l, nodes, v.name, v.ipsec, func(t *testing.T, r *scRun) { natScenario(t, r, forge) }) {
			return
		}
	}
}

// The NAT routers' public addresses.
var (
	natPublic  = netip.MustParseAddr("198.51.100.102") // r2: s2 (and s3)
	nat2Public = netip.MustParseAddr("198.51.100.104") // r4: s4
)

func natScenario(t *testing.T, r *scRun, forge string) {
	l, ipsec := r.l, r.protected()
	hub, s1, s2, s3, s4 := r.nodes[0], r.nodes[1], r.nodes[2], r.nodes[3], r.nodes[4]
	spokes := []*dnode{s1, s2}
	public := map[*dnode]netip.Addr{s2: natPublic, s4: nat2Public}
	// Where the hub's GRE goes to reach each spoke.
	gre := map[*dnode]netip.Addr{s1: s1.nbma, s2: natPublic, s4: nat2Public}
	if ipsec {
		spokes = append(spokes, s3)
		public[s3] = natPublic
		gre = map[*dnode]netip.Addr{s1: s1.nbma, s2: s2.nbma, s3: s3.nbma, s4: natAlias}
		// The hub and the public spoke need a route covering the NATed
		// spokes' private NBMA addresses (the tunnel-mode inner
		// destination; the GRE packet is routed before XFRM takes it): a
		// default route, as any internet-facing host has.
		for _, d := range []*dnode{hub, s1} {
			d.node.MustRun("ip route replace default dev eth0")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()

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
		t.Logf("timing: %s registered %v after start", s.name, scMS(time.Since(t0)))
	}
	// s4 starts once s2 holds 192.168.2.2: with IPsec its SA is the second
	// with that inner address, and the hub gives it the first alias.
	scStart(t, l, s4, scConfig(s4, scSpokeNHRP("300s", true, "", scNHS{hub, 0})))
	if _, err := scWaitNHS(ctx, s4, 120*time.Second, map[netip.Addr]bool{hub.nbma: true}); err != nil {
		out, _ := s4.ctl(ctx, "show ipsec")
		t.Fatalf("%v\ns4 show ipsec:\n%s", err, out)
	}
	t.Logf("timing: s4 (s2's private NBMA behind another NAT) registered %v after start", scMS(time.Since(t0)))
	want := map[netip.Addr]netip.Addr{s4.tunnel: s4.nbma}
	for _, s := range spokes {
		want[s.tunnel] = s.nbma
	}
	peers, err := scWaitPeers(ctx, hub, 30*time.Second, want)
	if err != nil {
		t.Fatal(err)
	}
	for s, pub := range public {
		if p := peers[s.tunnel]; p.ObservedNBMA != pub || !slices.Contains(p.Attrs, api.AttrNAT) {
			t.Errorf("hub show dmvpn for %s: observed %v attrs %v, want observed %v with %q", s.name, p.ObservedNBMA, p.Attrs, pub, api.AttrNAT)
		}
	}
	if p := peers[s1.tunnel]; p.ObservedNBMA.IsValid() || slices.Contains(p.Attrs, api.AttrNAT) {
		t.Errorf("hub show dmvpn for public s1: observed %v attrs %v, want no NAT", p.ObservedNBMA, p.Attrs)
	}

	// Hub <-> each spoke; with IPsec only ESP next to s1 and the NAT.
	pingHub := func(ss ...*dnode) func(context.Context) error {
		return func(ctx context.Context) error {
			for _, s := range ss {
				pctx, pcancel := context.WithTimeout(ctx, 30*time.Second)
				err := hub.node.WaitPing(pctx, s.tunnel)
				if err == nil {
					err = s.node.Ping(pctx, hub.tunnel, 3)
				}
				pcancel()
				if err != nil {
					return fmt.Errorf("hub <-> %s: %w", s.name, err)
				}
			}
			return nil
		}
	}
	multicast := func(context.Context) error {
		natMulticast(ctx, t, hub, gre)
		return nil
	}
	if ipsec {
		if err := l.CheckESPOnUnderlay(ctx, "s1", r.name+"-esp-s1", 4, pingHub(s1)); err != nil {
			t.Errorf("hub <-> s1 over IPsec: %v", err)
		}
		if err := l.CheckESPOnUnderlay(ctx, "r2", r.name+"-esp-nat", 8, pingHub(s2, s3)); err != nil {
			t.Errorf("hub <-> s2, s3 behind one NAT over IPsec: %v", err)
		}
		// Multicast copies to the spokes behind the NAT go to their
		// claimed (inner) addresses through their SAs.
		if err := l.CheckESPOnUnderlay(ctx, "r2", r.name+"-esp-nat-mcast", 6, multicast); err != nil {
			t.Errorf("multicast to s2, s3 behind one NAT over IPsec: %v", err)
		}
	} else {
		if err := pingHub(s1, s2)(ctx); err != nil {
			t.Fatalf("over the NAT: %v", err)
		}
		_ = multicast(ctx)
	}
	natSamePrivate(ctx, t, l, forge, hub, s2, s4, map[*dnode]netip.Addr{s2: gre[s2], s4: gre[s4]}, map[*dnode]string{s2: "r2", s4: "r4"}, ipsec)

	// Phase 3 across the NAT (and, with IPsec, behind it).
	for _, s := range spokes {
		s.node.MustRun("ip route replace 10.1.0.0/16 via 10.0.0.1 dev gre1 onlink")
		hub.node.MustRun(fmt.Sprintf("ip route replace %s via %s dev gre1 onlink", s.lan.Masked(), s.tunnel))
	}
	// The first packets between the LANs cross the hub.
	if err := scLANPing(ctx, s2, s1.lan.Addr(), 1); err != nil {
		t.Fatalf("NATed s2 LAN -> s1 LAN through the hub: %v", err)
	}
	if err := scLANPing(ctx, s1, s2.lan.Addr(), 1); err != nil {
		t.Fatalf("s1 LAN -> NATed s2 LAN through the hub: %v", err)
	}
	type pair struct {
		a, b         *dnode
		bNBMA, aNBMA netip.Addr // where each side's GRE to the other goes
		port         string     // underlay port to check for cleartext GRE ("" none)
	}
	pairs := []pair{{s1, s2, natPublic, s1.nbma, ""}}
	if ipsec {
		pairs = []pair{
			{s1, s2, s2.nbma, s1.nbma, "s1"}, // public <-> NATed: GRE to the claimed address, inside the SA
			{s2, s3, s3.nbma, s2.nbma, ""},   // behind the same NAT: private addresses
		}
	}
	for _, p := range pairs {
		t1 := time.Now()
		if err := scWaitDirect(ctx, p.a, p.b, p.bNBMA, p.aNBMA); err != nil {
			ipdLogState(ctx, t, p.a, p.b)
			t.Fatalf("no direct path %s <-> %s: %v", p.a.name, p.b.name, err)
		}
		t.Logf("timing: first packet to direct path %s <-> %s %v", p.a.name, p.b.name, scMS(time.Since(t1)))
		check := func(ctx context.Context) error { return scNotViaHub(ctx, hub, p.a, p.b) }
		if p.port != "" {
			err = l.CheckESPOnUnderlay(ctx, p.port, r.name+"-esp-"+p.a.name+"-"+p.b.name, 20, check)
		} else {
			err = check(ctx)
		}
		if err != nil {
			t.Errorf("%s <-> %s: %v", p.a.name, p.b.name, err)
		}
	}
	ipdLogState(ctx, t, append([]*dnode{hub, s4}, spokes...)...)
}

// natMulticast sends three link-local multicast packets out of the hub's
// gre1 (nhrp.multicast dynamic) and checks that each spoke got its copies
// at the address its GRE goes to (want: the NAT's public address for a
// NATed spoke), counted per destination in the hub's show counters with
// no send error, and that each spoke's gre1 received them (an nftables
// counter in prerouting, which sees them whatever groups the spoke joined).
func natMulticast(ctx context.Context, t *testing.T, hub *dnode, want map[*dnode]netip.Addr) {
	t.Helper()
	for d := range want {
		d.node.MustRun("nft add table ip e2emc && nft add chain ip e2emc pre '{ type filter hook prerouting priority -300; }' && " +
			"nft add rule ip e2emc pre iifname gre1 ip daddr 224.0.0.18 counter")
	}
	packets := regexp.MustCompile(`counter packets (\d+)`)
	rxMcast := func(d *dnode) int {
		out := d.node.MustRun("nft list chain ip e2emc pre")
		m := packets.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("%s: no counter in:\n%s", d.name, out)
		}
		n, _ := strconv.Atoi(m[1])
		return n
	}
	before, err := nodeCounters(ctx, hub)
	if err != nil {
		t.Fatal(err)
	}
	rx := map[*dnode]int{}
	for d := range want {
		rx[d] = rxMcast(d)
	}
	// No replies come back from a multicast echo: ping exits 1.
	hub.node.MustRun("ping -c 3 -i 0.2 -W 1 -t 1 -I gre1 224.0.0.18 >/dev/null 2>&1 || true")
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var after api.Counters
	err = lab.WaitFor(wctx, 200*time.Millisecond, func(ctx context.Context) error {
		if after, err = nodeCounters(ctx, hub); err != nil {
			return lab.Permanent(err)
		}
		var missing []string
		for d, a := range want {
			key := "multicast_copies_to_" + a.String()
			if got := after[key] - before[key]; got < 3 {
				missing = append(missing, fmt.Sprintf("%s: %s +%d, want +3", d.name, key, got))
			} else if got := rxMcast(d) - rx[d]; got < 3 {
				missing = append(missing, fmt.Sprintf("%s: gre1 received %d packets for 224.0.0.18, want 3", d.name, got))
			}
		}
		if len(missing) > 0 {
			return errors.New(strings.Join(missing, "; "))
		}
		return nil
	})
	if err != nil {
		t.Fatalf("multicast copies from the hub, 10 s after sending: %v", err)
	}
	if e := after["multicast_send_errors"] - before["multicast_send_errors"]; e != 0 {
		t.Errorf("hub: %d multicast send errors", e)
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
		r, err := scPing(ctx, d, netip.Addr{}, hub.tunnel, 50)
		if err == nil && !r.lossless(50) {
			err = fmt.Errorf("%s -> hub: %d of 50 answered\n%s", d.name, r.received, r.out)
		}
		return err
	}
	both := func(ctx context.Context) error {
		errs := make(chan error, 2)
		for _, d := range []*dnode{a, b} {
			go func() { errs <- lossless(d) }()
		}
		return errors.Join(<-errs, <-errs)
	}
	// With IPsec the pings run once, under the captures of both NATs'
	// outside ports.
	var err error
	if ipsec {
		err = l.CheckESPOnUnderlay(ctx, ports[a], "esp-same-private-"+ports[a], 50, func(ctx context.Context) error {
			return l.CheckESPOnUnderlay(ctx, ports[b], "esp-same-private-"+ports[b], 50, both)
		})
	} else {
		err = both(ctx)
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
