package e2e

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dmvpnd/dmvpnd/e2e/lab"
)

// TestOSPF: hub + 3 spokes with IPsec, FRR ospfd on every node as the
// only routing protocol (no BGP). OSPF needs dmvpnd's multicast
// replication: the hub copies its hellos and floods to every registered
// spoke, each spoke to the hub. One boot, two recipes of deploy/OSPF.md in
// turn:
//
//   - Phase3: gre1 point-to-multipoint. Adjacencies hub<->spoke reach
//     Full, every spoke learns every other spoke's LAN through the hub,
//     spoke-to-spoke traffic triggers a redirect and a shortcut route
//     (proto 157, metric 10, beside OSPF's metric 20 route through the
//     hub), goes direct, the underlay carries only ESP and IKE; a stopped
//     spoke's LAN leaves the others' tables within the dead interval
//     (timed from the guest's own clock: the kill, the hub's adjacency
//     change in ospfd's log, the route deletion in `ip -ts monitor`).
//   - Phase2: the same cloud switched to broadcast with the hub as DR
//     (spokes priority 0): the spokes learn each other's LANs with the
//     other spoke's tunnel address as next hop, and the first packet
//     makes a neighbor miss and an NHRP resolution, then goes direct.
func TestOSPF(t *testing.T) {
	l, nodes := bgpLab(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	bs := bgpWithIPsec(t, l, nodes, bgpSetup{})
	setup := ospfSetup{network: "point-to-multipoint", holding: 60 * time.Second, ipsec: bs.ipsec, vici: bs.vici}

	frr := ospfStartAll(t, l, nodes, setup)
	t0 := time.Now()
	if !t.Run("Phase3", func(t *testing.T) { ospfPhase3(ctx, t, l, nodes, frr, t0) }) {
		return
	}
	if !t.Run("Phase2", func(t *testing.T) { ospfPhase2(ctx, t, l, nodes, frr) }) {
		return
	}
	t.Run("EIGRP", func(t *testing.T) { eigrpOverReplication(ctx, t, nodes[:3]) })
}

// eigrpOverReplication starts FRR's eigrpd beside ospfd on the hub and
// the live spokes (issue 18 asks what EIGRP does over the same
// replication): EIGRP's hellos and updates go to 224.0.0.10, which
// dmvpnd's capture of 224.0.0.0/24 replicates like OSPF's. The hub and
// each spoke become EIGRP neighbours and each spoke learns the hub's LAN
// from EIGRP (zebra prefers it to OSPF's route: distance 90 < 110).
func eigrpOverReplication(ctx context.Context, t *testing.T, nodes []*dnode) {
	hub, spokes := nodes[0], nodes[1:]
	eigrp := map[*dnode]*lab.FRR{}
	t0 := time.Now()
	for _, d := range nodes {
		conf := fmt.Sprintf("hostname %s\nlog stdout informational\nrouter eigrp 1\n eigrp router-id %s\n network 10.0.0.0/24\n network %s\n", d.name, d.tunnel, d.lan.Masked())
		f, err := d.node.StartFRR(ctx, map[string]string{"eigrpd": conf})
		if err != nil {
			t.Fatal(err)
		}
		eigrp[d] = f
	}
	want := map[*dnode][]netip.Addr{hub: bgpTunnelAddrs(spokes)}
	for _, s := range spokes {
		want[s] = []netip.Addr{hub.tunnel}
	}
	wctx, wcancel := context.WithTimeout(ctx, 2*time.Minute)
	defer wcancel()
	for _, d := range nodes {
		var last string
		err := lab.WaitFor(wctx, 500*time.Millisecond, func(ctx context.Context) error {
			res, err := eigrp[d].Vtysh(ctx, "show ip eigrp neighbor")
			if err != nil {
				return err
			}
			last = string(res.Stdout)
			for _, w := range want[d] {
				if !eigrpHasNeighbor(last, w) {
					return fmt.Errorf("%s: no EIGRP neighbor %s", d.name, w)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatalf("EIGRP adjacency: %v\n%s", err, last)
		}
	}
	t.Logf("timing: EIGRP neighbours hub<->spokes %v after starting eigrpd", bgpMS(time.Since(t0)))
	for _, s := range spokes {
		err := ospfWaitRoutes(wctx, s.node, "EIGRP route to the hub's LAN", func(rs []ospfRoute) bool {
			return ospfHasRoute(rs, hub.lan.Masked(), hub.tunnel, "eigrp")
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("timing: the spokes route the hub's LAN by EIGRP %v after starting eigrpd", bgpMS(time.Since(t0)))
	for _, s := range spokes {
		if rs, err := ospfKernelRoutes(ctx, s.node); err == nil {
			t.Logf("%s LAN routes with EIGRP and OSPF: %v", s.name, rs)
		}
	}
	if res, err := eigrp[hub].Vtysh(ctx, "show ip eigrp topology"); err == nil {
		t.Logf("hub: show ip eigrp topology\n%s", strings.TrimSpace(string(res.Stdout)))
	}
}

// eigrpHasNeighbor reports whether FRR's `show ip eigrp neighbor` output
// lists addr as a neighbour (a line starting with the handle, then the
// address).
func eigrpHasNeighbor(out string, addr netip.Addr) bool {
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[1] == addr.String() {
			return true
		}
	}
	return false
}

// ospfPhase3 is TestOSPF's point-to-multipoint part; it ends with s3
// stopped.
func ospfPhase3(ctx context.Context, t *testing.T, l *lab.Lab, nodes []*dnode, frr map[*dnode]*lab.FRR, t0 time.Time) {
	hub, s1, s2, s3 := nodes[0], nodes[1], nodes[2], nodes[3]
	spokes := nodes[1:]
	var tunnels []netip.Addr
	for _, s := range spokes {
		tunnels = append(tunnels, s.tunnel)
	}
	wctx, wcancel := context.WithTimeout(ctx, 2*time.Minute)
	if err := ospfWaitFull(wctx, hub.name, frr[hub], tunnels); err != nil {
		wcancel()
		t.Fatalf("hub adjacencies: %v", err)
	}
	for _, s := range spokes {
		if err := ospfWaitFull(wctx, s.name, frr[s], []netip.Addr{hub.tunnel}); err != nil {
			wcancel()
			t.Fatalf("spoke adjacency: %v", err)
		}
	}
	wcancel()
	t.Logf("timing: OSPF Full hub<->every spoke %v after starting ospfd", bgpMS(time.Since(t0)))

	// Every spoke learns every other spoke's LAN through the hub.
	for _, s := range spokes {
		wctx, wcancel := context.WithTimeout(ctx, time.Minute)
		err := ospfWaitRoutes(wctx, s.node, "OSPF routes to the other spokes' LANs via the hub", func(rs []ospfRoute) bool {
			for _, o := range spokes {
				if o != s && !ospfHasRoute(rs, o.lan.Masked(), hub.tunnel, "ospf") {
					return false
				}
			}
			return true
		})
		wcancel()
		if err != nil {
			t.Fatalf("OSPF convergence: %v", err)
		}
	}
	t.Logf("timing: every spoke has the other spokes' LANs via the hub %v after starting ospfd", bgpMS(time.Since(t0)))
	for _, d := range nodes {
		c, err := nodeCounters(ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: multicast packets %d, copies %d, rate limited %d, send errors %d", d.name,
			c["multicast_packets"], c["multicast_copies"], c["multicast_rate_limited"], c["multicast_send_errors"])
		if c["multicast_copies"] == 0 {
			t.Errorf("%s: no multicast copies counted", d.name)
		}
		for _, p := range nodes {
			if p == d || (!d.hub && !p.hub) {
				continue
			}
			if c["multicast_copies_to_"+p.nbma.String()] == 0 {
				t.Errorf("%s: no multicast copies counted to %s (%s)", d.name, p.name, p.nbma)
			}
		}
	}

	// Spoke to spoke: through the hub, then a redirect and a shortcut.
	t1 := time.Now()
	g1 := bgpPingThroughHub(ctx, t, s1, s2)
	err := ospfWaitRoutes(ctx, s1.node, "shortcut route to s2's LAN (proto 157) beside OSPF's", func(rs []ospfRoute) bool {
		if ospfHasRoute(rs, s2.lan.Masked(), s2.tunnel, "157") {
			return true
		}
		_ = scLANPing(ctx, s1, s2.lan.Addr(), 1) // keep the flow alive
		return false
	})
	if err != nil {
		t.Fatalf("Phase 3 shortcut: %v", err)
	}
	t.Logf("timing: first packet to shortcut route %v", bgpMS(time.Since(t1)))
	if d, ok := bgpShortcutUpAfter(s1, g1, s2.lan.Masked()); ok {
		t.Logf("timing: first packet to shortcut up (s1's log) %v", bgpMS(d))
	}
	if rs, err := ospfKernelRoutes(ctx, s1.node); err == nil {
		// zebra takes the shortcut for a kernel route (distance 0) and
		// withdraws its own OSPF route of the same prefix from the kernel.
		t.Logf("s1 LAN routes with the shortcut: %v", rs)
	}
	bgpProveDirect(ctx, t, l, hub, s1, s2, "ospf-phase3-s2")
	// OSPF itself (hellos every 2 s, replicated) crosses the hub's
	// underlay as ESP only.
	err = l.CheckESPOnUnderlay(ctx, hub.name, "ospf-phase3-hub", 4, func(ctx context.Context) error {
		select {
		case <-time.After(3 * ospfHello):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	if err != nil {
		t.Fatalf("OSPF on the hub's underlay: %v", err)
	}

	// Without the shortcut, zebra's OSPF route through the hub is back.
	if _, err := s1.ctl(ctx, "clear nhrp shortcuts"); err != nil {
		t.Fatal(err)
	}
	tc := time.Now()
	err = ospfWaitRoutes(ctx, s1.node, "OSPF's route to s2's LAN via the hub back after the shortcut was cleared", func(rs []ospfRoute) bool {
		return ospfHasRoute(rs, s2.lan.Masked(), hub.tunnel, "ospf") && !ospfHasRoute(rs, s2.lan.Masked(), s2.tunnel, "157")
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("timing: OSPF route via the hub back %v after clearing the shortcut", bgpMS(time.Since(tc)))

	ospfStopSpoke(ctx, t, l, hub, s3, []*dnode{s1, s2}, frr)
}

// ospfStopSpoke stops spoke d (ospfd and zebra killed at one instant of
// the guest's clock, then dmvpnd) and checks that the hub declares it dead
// by its inactivity timer and that its LAN leaves the others' tables, each
// within the dead interval of the kill plus a stated slack. The kill, the
// hub's adjacency change (ospfd's log, millisecond timestamps) and the
// route deletions (`ip -ts monitor` on the others) are all read from the
// guest's clock, so the test's own polling latency does not count.
func ospfStopSpoke(ctx context.Context, t *testing.T, l *lab.Lab, hub, d *dnode, others []*dnode, frr map[*dnode]*lab.FRR) {
	t.Helper()
	// Timer slack: ospfd's timers and zebra run on an emulated CPU; the
	// hub's router LSA, the others' SPF and the kernel update follow the
	// adjacency change.
	const hubSlack, routeSlack = time.Second, 2 * time.Second
	mons := map[*dnode]*monitor{}
	for _, o := range others {
		mons[o] = startMonitor(ctx, t, l, o)
	}
	var pids []string
	for _, p := range frr[d].Procs {
		pids = append(pids, strconv.Itoa(p.PID))
	}
	res, err := d.node.Run(ctx, "date +%Y-%m-%dT%H:%M:%S.%N && kill -KILL "+strings.Join(pids, " "))
	if err != nil {
		t.Fatal(err)
	}
	killed, err := time.Parse("2006-01-02T15:04:05.999999999", strings.TrimSpace(string(res.Stdout)))
	if err != nil {
		t.Fatalf("%s: guest time of the kill: %v", d.name, err)
	}
	if err := d.proc.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	lan := d.lan.Masked().String()
	wctx, wcancel := context.WithTimeout(ctx, ospfDead+60*time.Second)
	err = lab.WaitFor(wctx, 200*time.Millisecond, func(ctx context.Context) error {
		nb, err := ospfNeighbors(ctx, frr[hub])
		if err != nil {
			return err
		}
		if _, ok := nb[d.tunnel.String()]; ok {
			return fmt.Errorf("hub still has %s as OSPF neighbor", d.name)
		}
		for _, o := range others {
			rs, err := ospfKernelRoutes(ctx, o.node)
			if err != nil {
				return err
			}
			if slices.ContainsFunc(rs, func(r ospfRoute) bool { return r.Dst == lan }) {
				return fmt.Errorf("%s still routes %s's LAN", o.name, d.name)
			}
		}
		return nil
	})
	wcancel()
	if err != nil {
		t.Fatalf("after stopping %s: %v", d.name, err)
	}
	at, reason, err := ospfAdjDeleted(frr[hub].Procs["ospfd"].Log, d.tunnel)
	if err != nil {
		t.Fatalf("hub: %v", err)
	}
	hubDrop := at.Sub(killed)
	t.Logf("timing: %s killed -> hub's adjacency Deleted (%s) %v (hello %v, dead interval %v)", d.name, reason, bgpMS(hubDrop), ospfHello, ospfDead)
	if reason != "InactivityTimer" {
		t.Errorf("hub: adjacency with %s deleted by %s, want InactivityTimer (the dead interval)", d.name, reason)
	}
	if hubDrop > ospfDead+hubSlack {
		t.Errorf("hub: adjacency with %s deleted %v after the kill, want within the dead interval %v (+%v slack)", d.name, bgpMS(hubDrop), ospfDead, hubSlack)
	}
	for _, o := range others {
		lines := mons[o].stop(ctx, t)
		at, ok := ipMonitorDeleted(lines, lan)
		if !ok {
			t.Errorf("%s: ip monitor saw no deletion of %s: %q", o.name, lan, lines)
			continue
		}
		gone := at.Sub(killed)
		t.Logf("timing: %s killed -> %s deletes its LAN route %v", d.name, o.name, bgpMS(gone))
		if gone > ospfDead+routeSlack {
			t.Errorf("%s: %s's LAN left the table %v after the kill, want within the dead interval %v (+%v slack)", o.name, d.name, bgpMS(gone), ospfDead, routeSlack)
		}
	}
}

// ospfAdjDeleted reads an ospfd log (`log timestamp precision 3`) for the
// adjacency with router id nbr going to Deleted: when, and the event that
// did it ("InactivityTimer" for the dead interval).
func ospfAdjDeleted(log string, nbr netip.Addr) (time.Time, string, error) {
	b, err := os.ReadFile(log)
	if err != nil {
		return time.Time{}, "", err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.Contains(line, "AdjChg: Nbr "+nbr.String()+",") || !strings.Contains(line, "-> Deleted (") {
			continue
		}
		const layout = "2006/01/02 15:04:05.000"
		if len(line) < len(layout) {
			break
		}
		at, err := time.Parse(layout, line[:len(layout)])
		if err != nil {
			return time.Time{}, "", fmt.Errorf("ospfd log %s: %w", log, err)
		}
		_, reason, _ := strings.Cut(line, "-> Deleted (")
		return at, strings.TrimSuffix(strings.TrimSpace(reason), ")"), nil
	}
	return time.Time{}, "", fmt.Errorf("ospfd log %s: no adjacency change of %s to Deleted", log, nbr)
}

// ipMonitorDeleted finds the first `ip -ts monitor` line deleting a route
// to dst and returns its timestamp.
func ipMonitorDeleted(lines []string, dst string) (time.Time, bool) {
	for _, line := range lines {
		ts, rest, ok := strings.Cut(strings.TrimPrefix(line, "["), "] ")
		if !ok || !strings.HasPrefix(rest, "Deleted "+dst+" ") {
			continue
		}
		at, err := time.Parse("2006-01-02T15:04:05.000000", ts)
		if err != nil {
			continue
		}
		return at, true
	}
	return time.Time{}, false
}

// ospfPhase2 is TestOSPF's broadcast part, run after ospfPhase3 (s3
// stopped): gre1 broadcast everywhere, the spokes with priority 0 so the
// hub is DR. OSPF's next hop for a spoke's LAN is then the other spoke's
// tunnel address, and the first packet resolves it over NHRP.
func ospfPhase2(ctx context.Context, t *testing.T, l *lab.Lab, nodes []*dnode, frr map[*dnode]*lab.FRR) {
	hub, s1, s2 := nodes[0], nodes[1], nodes[2]
	// Phase 3 left a shortcut between s1 and s2: drop the entries it
	// resolved so that Phase 2 starts without a binding.
	for _, s := range []*dnode{s1, s2} {
		if _, err := s.ctl(ctx, "clear nhrp cache"); err != nil {
			t.Fatal(err)
		}
	}
	pairs := [][2]*dnode{{s1, s2}, {s2, s1}}
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	err := lab.WaitFor(wctx, 200*time.Millisecond, func(ctx context.Context) error {
		for _, p := range pairs {
			if ll, st, err := bgpNeighbor(ctx, p[0], p[1].tunnel); err != nil {
				return err
			} else if ll != "" {
				return fmt.Errorf("%s still has a neighbor entry for %s (%s %s) after clear nhrp cache", p[0].name, p[1].tunnel, ll, st)
			}
		}
		return nil
	})
	wcancel()
	if err != nil {
		t.Fatal(err)
	}

	t0 := time.Now()
	for _, s := range []*dnode{s1, s2} {
		if _, err := frr[s].Vtysh(ctx, "configure terminal", "interface gre1", "ip ospf priority 0", "ip ospf network broadcast"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := frr[hub].Vtysh(ctx, "configure terminal", "interface gre1", "ip ospf network broadcast"); err != nil {
		t.Fatal(err)
	}
	// The hub is DR: Full/DROther with each spoke, each spoke Full/DR with
	// the hub (point-to-multipoint shows Full/-).
	want := map[*dnode]map[string]string{
		hub: {s1.tunnel.String(): "Full/DROther", s2.tunnel.String(): "Full/DROther"},
		s1:  {hub.tunnel.String(): "Full/DR"},
		s2:  {hub.tunnel.String(): "Full/DR"},
	}
	wctx, wcancel = context.WithTimeout(ctx, 2*time.Minute)
	for _, d := range []*dnode{hub, s1, s2} {
		var last map[string]string
		err := lab.WaitFor(wctx, 250*time.Millisecond, func(ctx context.Context) error {
			got, err := ospfNeighbors(ctx, frr[d])
			if err != nil {
				return err
			}
			last = got
			if !maps.Equal(got, want[d]) {
				return fmt.Errorf("%s: OSPF neighbors %v, want %v", d.name, got, want[d])
			}
			return nil
		})
		if err != nil {
			wcancel()
			t.Fatalf("broadcast adjacencies: %v (last %v)", err, last)
		}
	}
	wcancel()
	t.Logf("timing: broadcast adjacencies with the hub as DR %v after the switch", bgpMS(time.Since(t0)))
	for _, p := range pairs {
		wctx, wcancel := context.WithTimeout(ctx, time.Minute)
		err := ospfWaitRoutes(wctx, p[0].node, fmt.Sprintf("OSPF route to %s's LAN with next hop %s (the spoke itself)", p[1].name, p[1].tunnel), func(rs []ospfRoute) bool {
			return ospfHasRoute(rs, p[1].lan.Masked(), p[1].tunnel, "ospf")
		})
		wcancel()
		if err != nil {
			t.Fatalf("broadcast routes: %v", err)
		}
	}
	t.Logf("timing: spoke LANs via the other spoke %v after the switch", bgpMS(time.Since(t0)))

	// The first packet: a neighbor miss for s2's tunnel address, an NHRP
	// resolution, then the direct path.
	for _, p := range pairs {
		if ll, st, err := bgpNeighbor(ctx, p[0], p[1].tunnel); err != nil {
			t.Fatal(err)
		} else if ll != "" {
			t.Fatalf("%s has a neighbor entry for %s (%s %s) before the first packet", p[0].name, p[1].tunnel, ll, st)
		}
	}
	c0, err := nodeCounters(ctx, s1)
	if err != nil {
		t.Fatal(err)
	}
	t1 := time.Now()
	if _, _, err := bgpPingFrom(ctx, s1, s2, 1); err != nil { // may be lost while the address resolves
		t.Fatal(err)
	}
	if err := waitDirectNeighbors(ctx, pairs...); err != nil {
		t.Fatalf("Phase 2 resolution after the first packet: %v", err)
	}
	t.Logf("timing: first packet to direct neighbor entries on both spokes, seen by the test %v", bgpMS(time.Since(t1)))
	c1, err := nodeCounters(ctx, s1)
	if err != nil {
		t.Fatal(err)
	}
	if c1["kernel_neighbor_misses"] <= c0["kernel_neighbor_misses"] || c1["nhrp_resolutions_sent"] <= c0["nhrp_resolutions_sent"] {
		t.Errorf("s1: the first packet did not make a neighbor miss and a resolution (kernel_neighbor_misses %d -> %d, nhrp_resolutions_sent %d -> %d)",
			c0["kernel_neighbor_misses"], c1["kernel_neighbor_misses"], c0["nhrp_resolutions_sent"], c1["nhrp_resolutions_sent"])
	}
	bgpProveDirect(ctx, t, l, hub, s1, s2, "ospf-phase2-s2")
}
