package ipsec_test

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dmvpnd/dmvpnd/ipsec"
)

// natTopology: a hub on 10.77.0.1, a NAT namespace (public 10.77.0.254,
// private bridge 172.16.0.1/24, masquerade) and spokes 172.16.0.2... behind it.
func natTopology(t *testing.T, spokes int) (hub *node, natted []*node) {
	t.Helper()
	base := fmt.Sprintf("ipsn%d", os.Getpid()%100000)
	mk := func(name, addr string) *node {
		dir, err := os.MkdirTemp("", "ipsec-lab")
		if err != nil {
			t.Fatal(err)
		}
		n := &node{t: t, ns: base + name, dir: dir, sock: filepath.Join(dir, "charon.vici")}
		if addr != "" {
			n.addr = netip.MustParseAddr(addr)
		}
		run(t, "ip", "netns", "add", n.ns)
		t.Cleanup(func() {
			n.stopCharon()
			_ = exec.Command("ip", "netns", "del", n.ns).Run()
			if t.Failed() && n.log != nil {
				t.Logf("charon log of %s:\n%s", n.ns, n.charonLog())
			}
			os.RemoveAll(dir)
		})
		run(t, "ip", "-n", n.ns, "link", "set", "lo", "up")
		return n
	}
	hub = mk("h", "10.77.0.1")
	nat := mk("n", "")
	run(t, "ip", "link", "add", "hub0", "netns", hub.ns, "type", "veth", "peer", "name", "pub0", "netns", nat.ns)
	run(t, "ip", "-n", hub.ns, "addr", "add", "10.77.0.1/24", "dev", "hub0")
	run(t, "ip", "-n", hub.ns, "link", "set", "hub0", "up")
	hub.dev = "hub0"
	hub.wire = hub.watchEgress("hub0")
	// The hub routes the private NBMA range towards the NAT: GRE to a
	// claimed address is routed before XFRM picks it up (docs/strongswan.md,
	// "Spokes behind NAT").
	run(t, "ip", "-n", hub.ns, "route", "add", "172.16.0.0/12", "via", "10.77.0.254")
	run(t, "ip", "-n", nat.ns, "addr", "add", "10.77.0.254/24", "dev", "pub0")
	run(t, "ip", "-n", nat.ns, "link", "set", "pub0", "up")
	run(t, "ip", "-n", nat.ns, "link", "add", "br0", "type", "bridge")
	run(t, "ip", "-n", nat.ns, "addr", "add", "172.16.0.1/24", "dev", "br0")
	run(t, "ip", "-n", nat.ns, "link", "set", "br0", "up")
	run(t, "ip", "netns", "exec", nat.ns, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	nft := "add table ip nat\n" +
		"add chain ip nat post { type nat hook postrouting priority 100; }\n" +
		"add rule ip nat post oifname \"pub0\" masquerade\n"
	cmd := exec.Command("ip", "netns", "exec", nat.ns, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(nft)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft: %v %s", err, out)
	}
	for i := range spokes {
		s := mk(fmt.Sprintf("s%d", i), fmt.Sprintf("172.16.0.%d", i+2))
		dev := fmt.Sprintf("sp%d", i)
		run(t, "ip", "link", "add", dev, "netns", s.ns, "type", "veth", "peer", "name", dev+"n", "netns", nat.ns)
		run(t, "ip", "-n", nat.ns, "link", "set", dev+"n", "master", "br0", "up")
		run(t, "ip", "-n", s.ns, "addr", "add", s.addr.String()+"/24", "dev", dev)
		run(t, "ip", "-n", s.ns, "link", "set", dev, "up")
		run(t, "ip", "-n", s.ns, "route", "add", "default", "via", "172.16.0.1")
		s.dev = dev
		s.wire = s.watchEgress(dev)
		natted = append(natted, s)
	}
	return hub, natted
}

// espDelta waits until the ESP state src->dst on n counted at least want
// packets more than before.
func espDelta(t *testing.T, n *node, src, dst netip.Addr, before, want int) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, _ := n.espPackets(src, dst)
		if got-before >= want {
			return got
		}
		if time.Now().After(deadline) {
			out, _ := exec.Command("ip", "-n", n.ns, "-s", "xfrm", "state").CombinedOutput()
			t.Fatalf("%s: ESP %s->%s counted %d (+%d), want +%d\n%s", n.ns, src, dst, got, got-before, want, out)
		}
		time.Sleep(100 * time.Millisecond) // polling kernel counters with a deadline
	}
}

// TestCharonNATSpokes: two spokes behind one NAT address each get a NAT-T
// SA in tunnel mode with their claimed address as inner selector; the hub
// sends each one's GRE to that spoke only. One spoke knows it is behind
// NAT, the other detects it.
func TestCharonNATSpokes(t *testing.T) {
	requirePrivileged(t)
	hub, spokes := natTopology(t, 2)
	public := netip.MustParseAddr("10.77.0.254")
	hub.startCharon()
	for _, s := range spokes {
		s.startCharon()
	}
	hcfg := pskLab()
	hcfg.NATInnerPrefixes = []netip.Prefix{netip.MustParsePrefix("172.16.0.0/12")}
	mh := hub.manager(hcfg)
	waitConnectedNoPeers(t, mh)
	ms := make([]*ipsec.Manager, len(spokes))
	for i, s := range spokes {
		cfg := pskLab()
		// The first spoke is configured as behind NAT; the others find
		// out from charon's NAT detection and switch to tunnel mode.
		cfg.BehindNAT = i == 0
		ms[i] = s.manager(cfg)
		if err := ms[i].SetPeers([]ipsec.Peer{{Name: "hub", RemoteNBMA: hub.addr, Initiate: ipsec.Initiate}}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range spokes {
		ev := waitUp(t, ms[i], "hub", labTimeout)
		if ev.Observed != netip.AddrPortFrom(hub.addr, 4500) {
			t.Errorf("spoke %d observes the hub at %v, want %v:4500 (NAT-T)", i, ev.Observed, hub.addr)
		}
	}
	// The hub learns the spokes (as NHRP registration would tell it).
	var peers []ipsec.Peer
	for _, s := range spokes {
		peers = append(peers, ipsec.Peer{RemoteNBMA: public, ClaimedNBMA: s.addr})
	}
	if err := mh.SetPeers(peers); err != nil {
		t.Fatal(err)
	}
	ports := map[uint16]bool{}
	for _, s := range spokes {
		ev := waitUp(t, mh, s.addr.String(), labTimeout)
		if ev.Observed.Addr() != public || !ev.NATRemote {
			t.Errorf("hub observes %s at %v (NAT %v), want %v behind NAT", s.addr, ev.Observed, ev.NATRemote, public)
		}
		ports[ev.Observed.Port()] = true
	}
	if len(ports) != len(spokes) {
		t.Errorf("NAT ports %v: want one per spoke", ports)
	}
	// Hub -> each spoke: only that spoke's inbound SA counts the packets.
	for i, s := range spokes {
		before := make([]int, len(spokes))
		for j, o := range spokes {
			before[j], _ = o.espPackets(hub.addr, o.addr)
		}
		var wire map[string]int
		if hub.wire {
			wire = hub.egress()
		}
		if err := hub.sendGRE(s.addr, 10); err != nil {
			t.Fatal(err)
		}
		espDelta(t, s, hub.addr, s.addr, before[i], 10)
		if hub.wire {
			checkWire(t, hub, wire, 10)
		}
		for j, o := range spokes {
			if j == i {
				continue
			}
			if got, _ := o.espPackets(hub.addr, o.addr); got != before[j] {
				t.Errorf("GRE for %s reached %s (%d packets)", s.addr, o.addr, got-before[j])
			}
		}
		// And back.
		hin, _ := hub.espPackets(public, hub.addr)
		if s.wire {
			wire = s.egress()
		}
		if err := s.sendGRE(hub.addr, 10); err != nil {
			t.Fatal(err)
		}
		espDelta(t, hub, public, hub.addr, hin, 10)
		if s.wire {
			checkWire(t, s, wire, 10)
		}
	}
	out, _ := exec.Command("ip", "-n", hub.ns, "xfrm", "state").CombinedOutput()
	if !strings.Contains(string(out), "espinudp") {
		t.Errorf("hub's SAs are not UDP-encapsulated:\n%s", out)
	}
	if st := mh.State(); st.Terminated != 0 {
		t.Errorf("hub terminated %d SAs of honest spokes", st.Terminated)
	}
}
