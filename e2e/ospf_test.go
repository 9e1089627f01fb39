package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dmvpnd/dmvpnd/e2e/lab"
)

// TestOSPFPhase3: hub + 3 spokes with IPsec, FRR ospfd on every node as the
// only routing protocol (no BGP), gre1 point-to-multipoint. OSPF needs
// dmvpnd's multicast replication: the hub copies its hellos and floods to
// every registered spoke, each spoke to the hub. Adjacencies hub<->spoke
// reach Full, every spoke learns every other spoke's LAN through the hub,
// spoke-to-spoke traffic triggers a redirect and a shortcut route (proto
// 157, metric 10, beside OSPF's metric 20 route through the hub), goes
// direct, the underlay carries only ESP and IKE, and a stopped spoke's LAN
// leaves the others' tables (timed, not yet bounded: see the end).
func TestOSPFPhase3(t *testing.T) {
	l, nodes := bgpLab(t, 3)
	hub, s1, s2, s3 := nodes[0], nodes[1], nodes[2], nodes[3]
	spokes := nodes[1:]
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	bs := bgpWithIPsec(t, l, nodes, bgpSetup{})
	setup := ospfSetup{network: "point-to-multipoint", holding: 60 * time.Second, ipsec: bs.ipsec, vici: bs.vici}

	// The underlay of s1 is watched from before the first IKE packet: only
	// IKE and ESP may cross it during the whole scenario.
	frr := ospfStartAll(t, l, nodes, setup)
	t0 := time.Now()

	var tunnels []netip.Addr
	for _, s := range spokes {
		tunnels = append(tunnels, s.tunnel)
	}
	wctx, wcancel := context.WithTimeout(ctx, 2*time.Minute)
	if err := ospfWaitFull(wctx, hub, frr[hub], tunnels); err != nil {
		wcancel()
		t.Fatalf("hub adjacencies: %v", err)
	}
	for _, s := range spokes {
		if err := ospfWaitFull(wctx, s, frr[s], []netip.Addr{hub.tunnel}); err != nil {
			wcancel()
			t.Fatalf("spoke adjacency: %v", err)
		}
	}
	wcancel()
	t.Logf("timing: OSPF Full hub<->every spoke %v after starting ospfd", bgpMS(time.Since(t0)))

	// Every spoke learns every other spoke's LAN through the hub.
	for _, s := range spokes {
		wctx, wcancel := context.WithTimeout(ctx, time.Minute)
		err := ospfWaitRoutes(wctx, s, "OSPF routes to the other spokes' LANs via the hub", func(rs []ospfRoute) bool {
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
		c, err := bgpCounters(ctx, d)
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
	g1, res, err := bgpPingFrom(ctx, s1, s2, 3)
	if err != nil {
		t.Fatal(err)
	}
	if res.Exit != 0 {
		t.Fatalf("LAN to LAN through the hub: ping exit %d\n%s", res.Exit, res.Stdout)
	}
	err = ospfWaitRoutes(ctx, s1, "shortcut route to s2's LAN (proto 157) beside OSPF's", func(rs []ospfRoute) bool {
		if ospfHasRoute(rs, s2.lan.Masked(), s2.tunnel, "157") {
			return true
		}
		_ = bgpLANPing(ctx, s1, s2, 1, "0.2") // keep the flow alive
		return false
	})
	if err != nil {
		t.Fatalf("Phase 3 shortcut: %v", err)
	}
	t.Logf("timing: first packet to shortcut route %v", bgpMS(time.Since(t1)))
	if d, ok := bgpShortcutUpAfter(s1, g1, s2.lan.Masked()); ok {
		t.Logf("timing: first packet to shortcut up (s1's log) %v", bgpMS(d))
	}
	if rs, err := ospfKernelRoutes(ctx, s1); err == nil {
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
	err = ospfWaitRoutes(ctx, s1, "OSPF's route to s2's LAN via the hub back after the shortcut was cleared", func(rs []ospfRoute) bool {
		return ospfHasRoute(rs, s2.lan.Masked(), hub.tunnel, "ospf") && !ospfHasRoute(rs, s2.lan.Masked(), s2.tunnel, "157")
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("timing: OSPF route via the hub back %v after clearing the shortcut", bgpMS(time.Since(tc)))

	// s3 stops (ospfd killed, dmvpnd stopped): the hub declares it dead and
	// its LAN leaves s1's and s2's tables.
	stopped := time.Now()
	for _, p := range frr[s3].Procs {
		if _, err := s3.node.Run(ctx, fmt.Sprintf("kill -KILL %d", p.PID)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s3.proc.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	gone := map[*dnode]time.Duration{}
	wctx, wcancel = context.WithTimeout(ctx, ospfDead+60*time.Second)
	err = lab.WaitFor(wctx, 100*time.Millisecond, func(ctx context.Context) error {
		var pending []string
		if _, ok := gone[hub]; !ok {
			nb, err := ospfNeighbors(ctx, frr[hub])
			if err != nil {
				return err
			}
			if _, ok := nb[s3.tunnel.String()]; ok {
				pending = append(pending, "hub still has s3 as OSPF neighbor")
			} else {
				gone[hub] = time.Since(stopped)
			}
		}
		for _, s := range []*dnode{s1, s2} {
			if _, ok := gone[s]; ok {
				continue
			}
			rs, err := ospfKernelRoutes(ctx, s)
			if err != nil {
				return err
			}
			if slices.ContainsFunc(rs, func(r ospfRoute) bool { return r.Dst == s3.lan.Masked().String() }) {
				pending = append(pending, s.name+" still routes s3's LAN")
			} else {
				gone[s] = time.Since(stopped)
			}
		}
		if len(pending) > 0 {
			return fmt.Errorf("after stopping s3: %s", strings.Join(pending, "; "))
		}
		return nil
	})
	wcancel()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("timing: s3 stopped -> hub drops the neighbor %v, s1 drops s3's LAN %v, s2 %v (hello %v, dead interval %v)",
		bgpMS(gone[hub]), bgpMS(gone[s1]), bgpMS(gone[s2]), ospfHello, ospfDead)
	// Not asserted yet: that the LAN goes within the dead interval. Two
	// runs measured 9.5 s and 10.7 s (dead interval 8 s), then 13.7 s and
	// 25.3 s with the hub dropping the neighbor only after 22.6 s; the
	// cause (OSPF LSA and SPF throttling, the lab's emulated CPU, or the
	// replication) is not known yet. The timings above are the evidence.
	if out, err := frr[hub].Vtysh(ctx, "show ip ospf neighbor"); err == nil {
		t.Logf("hub: show ip ospf neighbor\n%s", strings.TrimSpace(string(out.Stdout)))
	}
}
