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

// TestDMVPNNAT is issue 9 scenario 4 for plain GRE: one spoke (s2) behind
// a NAT router (masquerade to 198.51.100.102), one public spoke (s1), no
// IPsec, Phase 3. It checks, with real packets:
//   - s2 registers through the NAT: the hub's show dmvpn lists it with its
//     claimed NBMA (192.168.2.2), the observed post-NAT NBMA and the NAT
//     attribute, and its kernel neighbor entry points at the NAT's public
//     address (GRE cannot reach the private one);
//   - hub <-> s2 tunnel pings work both ways over the NAT;
//   - LAN-to-LAN traffic between s1 and s2 flows (first through the hub),
//     then a Phase 3 shortcut forms across the NAT: each side's neighbor
//     entry points at the other's reachable address (s1 -> the NAT's
//     public address, s2 -> s1's NBMA) and the flow bypasses the hub (its
//     gre1 receive counter stays flat). This relies on the NATed side
//     opening the path (the public side waits for its probe, see the
//     engine's awaitsPeer).
//   - issue 13 item 7 without IPsec: s4 behind another NAT (r4,
//     198.51.100.104) with s2's private NBMA registers too; the hub lists
//     both with their own post-NAT addresses and points each neighbour
//     entry at its NAT, both ping the hub continuously without loss, and
//     neither can deregister or purge the other (refusals counted, the
//     hub's state unchanged).
//
// Two spokes behind one NAT address, and NATed spokes with IPsec (NAT-T),
// are TestDMVPNNATIPsec's.
func TestDMVPNNAT(t *testing.T) {
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
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	// The hub replicates link-local multicast to its spokes (issue 18).
	scStart(t, l, hub, scConfig(hub, scHubNHRP("300s", true)+"  multicast: {dynamic: true}\n"))
	hub.waitReady(t, 60*time.Second)
	t0 := time.Now()
	for _, s := range []*dnode{s1, s2, s4} {
		scStart(t, l, s, scConfig(s, scSpokeNHRP("300s", true, "", scNHS{hub, 0})))
	}
	if _, err := scWaitNHS(ctx, s2, 90*time.Second, map[netip.Addr]bool{hub.nbma: true}); err != nil {
		t.Fatalf("s2 behind NAT did not register: %v", err)
	}
	t.Logf("timing: registration behind NAT %v after start (dmvpnctl view)", scMS(time.Since(t0)))
	if rtt, ok := scRegistrationRTT(t, s2, hub.nbma); ok {
		t.Logf("timing: registration behind NAT, request to reply (dmvpnd log) %v", scMS(rtt))
	}
	for _, s := range []*dnode{s1, s4} {
		if _, err := scWaitNHS(ctx, s, 30*time.Second, map[netip.Addr]bool{hub.nbma: true}); err != nil {
			t.Fatal(err)
		}
	}

	peers, err := scWaitPeers(ctx, hub, 10*time.Second, map[netip.Addr]netip.Addr{s1.tunnel: s1.nbma, s2.tunnel: s2.nbma, s4.tunnel: s4.nbma})
	if err != nil {
		t.Fatal(err)
	}
	if p := peers[s4.tunnel]; p.ObservedNBMA != nat2Public || !slices.Contains(p.Attrs, api.AttrNAT) {
		t.Errorf("hub show dmvpn for s4: observed %v attrs %v, want observed %v with %q", p.ObservedNBMA, p.Attrs, nat2Public, api.AttrNAT)
	}
	p := peers[s2.tunnel]
	if p.ObservedNBMA != natPublic || !slices.Contains(p.Attrs, api.AttrNAT) {
		t.Errorf("hub show dmvpn for s2: observed %v attrs %v, want observed %v with %q", p.ObservedNBMA, p.Attrs, natPublic, api.AttrNAT)
	}
	if p := peers[s1.tunnel]; p.ObservedNBMA.IsValid() || slices.Contains(p.Attrs, api.AttrNAT) {
		t.Errorf("hub show dmvpn for public s1: observed %v attrs %v, want no NAT", p.ObservedNBMA, p.Attrs)
	}
	neigh, raw, err := scNeighbors(ctx, hub)
	if err != nil {
		t.Fatal(err)
	}
	if neigh[s2.tunnel] != natPublic {
		t.Errorf("hub neighbor for NATed s2 does not point at the NAT's public address %s:\n%s", natPublic, raw)
	}

	pctx, pcancel := context.WithTimeout(ctx, 30*time.Second)
	defer pcancel()
	if err := hub.node.WaitPing(pctx, s2.tunnel); err != nil {
		t.Fatalf("hub -> s2 over the NAT: %v", err)
	}
	if err := s2.node.Ping(pctx, hub.tunnel, 3); err != nil {
		t.Fatalf("s2 -> hub over the NAT: %v", err)
	}
	natMulticast(ctx, t, hub, map[*dnode]netip.Addr{s1: s1.nbma, s2: natPublic, s4: nat2Public})
	natSamePrivate(ctx, t, l, forge, hub, s2, s4, map[*dnode]netip.Addr{s2: natPublic, s4: nat2Public}, nil, false)

	for _, s := range []*dnode{s1, s2} {
		s.node.MustRun("ip route replace 10.1.0.0/16 via 10.0.0.1 dev gre1 onlink")
		hub.node.MustRun(fmt.Sprintf("ip route replace %s via %s dev gre1 onlink", s.lan.Masked(), s.tunnel))
	}
	// The first packets between the LANs cross the hub.
	t1 := time.Now()
	if err := scLANPing(ctx, s2, s1.lan.Addr(), 1); err != nil {
		t.Fatalf("NATed s2 LAN -> s1 LAN through the hub: %v", err)
	}
	if err := scLANPing(ctx, s1, s2.lan.Addr(), 1); err != nil {
		t.Fatalf("s1 LAN -> NATed s2 LAN through the hub: %v", err)
	}

	if err := scWaitDirect(ctx, s1, s2, natPublic, s1.nbma); err != nil {
		t.Fatalf("no direct path between public s1 and NATed s2: %v", err)
	}
	t.Logf("timing: first packet to direct path across the NAT %v", scMS(time.Since(t1)))

	if err := scNotViaHub(ctx, hub, s1, s2); err != nil {
		t.Error(err)
	}
	for _, d := range []*dnode{s1, s2, hub} {
		out, _ := d.ctl(ctx, "show dmvpn")
		t.Logf("%s show dmvpn:\n%s", d.name, out)
	}
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
