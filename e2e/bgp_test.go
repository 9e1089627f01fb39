package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dmvpnd/dmvpnd/controller/api"
	"github.com/dmvpnd/dmvpnd/e2e/lab"
)

// directPings is how many pings prove a direct path: through the hub they
// would add at least as many packets to its gre1 receive counter; fewer
// than half may come from routing and NHRP chatter meanwhile.
const directPings = 40

// bgpSummary is the Phase 3 hub's summary of every LAN (10.1.N.0/24).
var bgpSummary = netip.MustParsePrefix("10.1.0.0/16")

// TestBGPPhase2 runs dmvpnd with BGP and IPsec on a hub and three spokes
// (iBGP AS 65000; the hub accepts the spokes as dynamic neighbors and
// reflects their LANs with next hops unchanged; no redirects, so only
// Phase 2 resolution can build a direct path; GRE protected by IPsec
// transport-mode SAs, PSK, one charon per node). It checks:
//   - every spoke installs every other spoke's LAN via that spoke's tunnel
//     address, and the hub's LAN via the hub (kernel routes, proto 157);
//   - the stock gobgp CLI against the hub's API lists three established
//     neighbors, the spokes' routes in the global RIB and the reflected
//     routes (next hop unchanged) in a spoke's adj-out;
//   - the first packet from one spoke LAN to another makes the spoke
//     resolve the other spoke's tunnel address (kernel neighbor miss), and
//     the flow then goes spoke to spoke over its own SA: the hub's gre1
//     receive counter stays (nearly) put during 40 pings, and s2's underlay port
//     carries only ESP meanwhile;
//   - SIGHUP with s3's LAN removed from bgp.prefixes withdraws it from
//     every node's kernel and the hub's RIB (pings to it fail), putting it
//     back restores it (pings work), and gre1 is never re-created (same
//     ifindex).
func TestBGPPhase2(t *testing.T) {
	l, nodes := bgpLab(t, 3)
	hub, s1, s2, s3 := nodes[0], nodes[1], nodes[2], nodes[3]
	spokes := nodes[1:]
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	setup := bgpWithIPsec(t, l, nodes, bgpSetup{hubMode: "reflect", hubLAN: true, shortcut: true})

	t0 := bgpStartAll(t, l, nodes, setup).start

	// Every node's BGP routes, with the LANs of the nodes in without.
	want := func(d *dnode, without ...*dnode) []bgpRoute {
		var out []bgpRoute
		for _, o := range nodes {
			if o == d || slices.Contains(without, o) {
				continue
			}
			out = append(out, bgpRt(o.lan.Masked().String(), o.tunnel.String()))
		}
		return out
	}
	withS3 := func(d *dnode) []bgpRoute { return want(d) }
	withoutS3 := func(d *dnode) []bgpRoute { return want(d, s3) }
	bgpWaitConverged(ctx, t, nodes, withS3)
	t.Logf("timing: BGP convergence (every LAN in every kernel) %v after start", bgpMS(time.Since(t0)))

	// The stock gobgp CLI against the hub.
	gobgpWantEstablished(ctx, t, hub, "10.0.0.2", "10.0.0.3", "10.0.0.4")
	rib, err := gobgpCLI(ctx, hub, "global rib")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("hub: gobgp global rib\n%s", rib)
	for _, s := range spokes {
		if !gobgpRIBHas(rib, s.lan.Masked(), s.tunnel) {
			t.Errorf("gobgp global rib on the hub: no %s with next hop %s", s.lan.Masked(), s.tunnel)
		}
	}
	adj, err := gobgpCLI(ctx, hub, "neighbor "+s1.tunnel.String()+" adj-out")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("hub: gobgp neighbor %s adj-out\n%s", s1.tunnel, adj)
	for _, s := range []*dnode{s2, s3} {
		if !gobgpRIBHas(adj, s.lan.Masked(), s.tunnel) {
			t.Errorf("gobgp neighbor %s adj-out: %s is not reflected with next hop %s", s1.tunnel, s.lan.Masked(), s.tunnel)
		}
	}

	// Phase 2: no binding for s2 before the first packet.
	if ll, st, err := bgpNeighbor(ctx, s1, s2.tunnel); err != nil {
		t.Fatal(err)
	} else if ll != "" {
		t.Fatalf("s1 has a neighbor entry for %s (%s %s) before any traffic", s2.tunnel, ll, st)
	}
	c0, err := nodeCounters(ctx, s1)
	if err != nil {
		t.Fatal(err)
	}
	t1 := time.Now()
	g1, _, err := bgpPingFrom(ctx, s1, s2, 1) // may be lost while the address resolves
	if err != nil {
		t.Fatal(err)
	}
	// Both directions: s2 resolves s1 when its first reply misses.
	if err := waitDirectNeighbors(ctx, [2]*dnode{s1, s2}, [2]*dnode{s2, s1}); err != nil {
		t.Fatalf("Phase 2 resolution after the first packet: %v", err)
	}
	t.Logf("timing: first packet to direct neighbor entries on both spokes, seen by the test %v", bgpMS(time.Since(t1)))
	if d, ok := bgpShortcutUpAfter(s1, g1, netip.PrefixFrom(s2.tunnel, 32)); ok {
		t.Logf("timing: first packet to direct path up (s1's log) %v", bgpMS(d))
	}
	c1, err := nodeCounters(ctx, s1)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"kernel_neighbor_misses", "nhrp_resolutions_sent"} {
		t.Logf("s1 counter %s: %d before the first packet, %d after", k, c0[k], c1[k])
	}
	if c1["kernel_neighbor_misses"] <= c0["kernel_neighbor_misses"] || c1["nhrp_resolutions_sent"] <= c0["nhrp_resolutions_sent"] {
		t.Errorf("s1: the first packet did not make a neighbor miss and a resolution (kernel_neighbor_misses %d -> %d, nhrp_resolutions_sent %d -> %d)",
			c0["kernel_neighbor_misses"], c1["kernel_neighbor_misses"], c0["nhrp_resolutions_sent"], c1["nhrp_resolutions_sent"])
	}
	v, err := s1.showDMVPN(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := bgpPeer(v, s2.tunnel); !ok || p.NBMA != s2.nbma {
		t.Errorf("s1 show dmvpn: no peer %s at NBMA %s: %+v", s2.tunnel, s2.nbma, v.Peers)
	}
	bgpProveDirect(ctx, t, l, hub, s1, s2, "phase2-s2")
	if out, err := s1.ctl(ctx, "show dmvpn"); err == nil {
		t.Logf("s1: dmvpnctl show dmvpn\n%s", out)
	}

	// Withdraw s3's LAN by SIGHUP; the tunnel stays.
	idx, err := bgpIfindex(ctx, s3)
	if err != nil {
		t.Fatal(err)
	}
	t2 := time.Now()
	bgpReload(t, l, s3, setup, nil)
	bgpWaitAll(ctx, t, fmt.Sprintf("withdrawing %s", s3.lan.Masked()), []*dnode{hub, s1, s2}, withoutS3, true)
	t.Logf("timing: withdrawal of %s (SIGHUP to gone from every kernel) %v", s3.lan.Masked(), bgpMS(time.Since(t2)))
	if rib, err := gobgpCLI(ctx, hub, "global rib"); err != nil {
		t.Fatal(err)
	} else if gobgpRIBHasPrefix(rib, s3.lan.Masked()) {
		t.Errorf("hub's gobgp global rib still has %s after the withdrawal:\n%s", s3.lan.Masked(), rib)
	}
	if err := scLANPing(ctx, s1, s3.lan.Addr(), 2); err == nil {
		t.Errorf("s1 LAN still reaches s3's LAN %s after the withdrawal", s3.lan.Addr())
	}
	if got, err := bgpIfindex(ctx, s3); err != nil {
		t.Fatal(err)
	} else if got != idx {
		t.Errorf("s3: gre1 ifindex %d after SIGHUP, was %d: the tunnel was re-created", got, idx)
	}

	// And back.
	bgpReload(t, l, s3, setup, []netip.Prefix{s3.lan.Masked()})
	bgpWaitAll(ctx, t, fmt.Sprintf("re-originating %s", s3.lan.Masked()), nodes, withS3, true)
	pctx, pcancel := context.WithTimeout(ctx, 30*time.Second)
	err = lab.WaitFor(pctx, 200*time.Millisecond, func(ctx context.Context) error { return scLANPing(ctx, s1, s3.lan.Addr(), 1) })
	pcancel()
	if err != nil {
		t.Errorf("s1 LAN to s3 LAN after re-originating it: %v", err)
	}
	if got, err := bgpIfindex(ctx, s3); err != nil {
		t.Fatal(err)
	} else if got != idx {
		t.Errorf("s3: gre1 ifindex %d after the second SIGHUP, was %d: the tunnel was re-created", got, idx)
	}

	// The hub's import policy changes live, through ExecReload's
	// `dmvpnctl reload --wait`: accepting only s1's and s2's LANs drops
	// s3's from the hub and from what it reflects, the default policy
	// brings it back, and no BGP session restarts meanwhile (every
	// session's established time stays).
	since := bgpSessionsSince(ctx, t, nodes)
	narrow := setup
	narrow.bgpExtra = fmt.Sprintf("  accept: [{prefix: %s}, {prefix: %s}]\n", s1.lan.Masked(), s2.lan.Masked())
	t3 := time.Now()
	bgpCtlReload(ctx, t, l, hub, narrow.bgpConfig(hub, setup.prefixes(hub)), "bgp.accept[1].prefix")
	bgpWaitAll(ctx, t, fmt.Sprintf("hub import policy without %s", s3.lan.Masked()), []*dnode{hub, s1, s2}, withoutS3, true)
	t.Logf("timing: hub import policy narrowed (reload to %s gone from every kernel) %v", s3.lan.Masked(), bgpMS(time.Since(t3)))
	bgpCtlReload(ctx, t, l, hub, setup.bgpConfig(hub, setup.prefixes(hub)), "bgp.accept[0].prefix")
	bgpWaitAll(ctx, t, "hub import policy back to the default", nodes, withS3, true)
	// Since is the time now minus GoBGP's uptime in whole seconds: it
	// moves by up to a second between two reads of the same session. A
	// restarted session's moves by the minutes since BGP convergence.
	after := bgpSessionsSince(ctx, t, nodes)
	if !slices.Equal(slices.Sorted(maps.Keys(since)), slices.Sorted(maps.Keys(after))) {
		t.Errorf("established BGP sessions %v before the import policy reloads, %v after", slices.Sorted(maps.Keys(since)), slices.Sorted(maps.Keys(after)))
	}
	for k, b := range since {
		if a, ok := after[k]; ok && (a.Sub(b) > 2*time.Second || b.Sub(a) > 2*time.Second) {
			t.Errorf("BGP session %s restarted by the import policy reloads: established %s before, %s after", k, b.Format(time.RFC3339Nano), a.Format(time.RFC3339Nano))
		}
	}
	t.Logf("BGP sessions kept through both reloads: %d, established since %v", len(after), after)
}

// bgpSessionsSince maps "node>neighbor" to the time the session was
// established, for every established BGP session of nodes.
func bgpSessionsSince(ctx context.Context, t *testing.T, nodes []*dnode) map[string]time.Time {
	t.Helper()
	out := map[string]time.Time{}
	for _, d := range nodes {
		text, err := d.ctl(ctx, "show bgp summary --json")
		if err != nil {
			t.Fatal(err)
		}
		var sum api.BGPSummary
		if err := json.Unmarshal([]byte(text), &sum); err != nil {
			t.Fatal(err)
		}
		for _, n := range sum.Neighbors {
			if n.State == "Established" {
				out[d.name+">"+n.Address.String()] = n.Since
			}
		}
	}
	return out
}

// bgpCtlReload writes cfg as d's configuration and reloads it as the
// unit's ExecReload does (`dmvpnctl reload --wait`), which must exit 0
// and list key as applied.
func bgpCtlReload(ctx context.Context, t *testing.T, l *lab.Lab, d *dnode, cfg string, key string) {
	t.Helper()
	if err := l.WriteFile(ctx, d.dir+"/dmvpnd.yaml", []byte(cfg), 0o600); err != nil {
		t.Fatalf("%s: write config: %v", d.name, err)
	}
	res, err := ctlJSON[api.ReloadResult](ctx, d, "reload --wait")
	if err != nil {
		t.Fatalf("%s: dmvpnctl reload --wait: %v", d.name, err)
	}
	if !slices.ContainsFunc(res.Changes, func(c api.ConfigChange) bool { return c.Key == key && c.Disposition == api.DispositionLive }) {
		t.Errorf("%s: reload did not apply %s live: %+v", d.name, key, res.Changes)
	}
}

// TestBGPPhase3Summary runs a Phase 3 hub (hub_mode summary, summary
// 10.1.0.0/16, redirects on) and three spokes with a 30 s NHRP holding
// time, IPsec on. It checks:
//   - each spoke learns only the summary, via the hub; the hub installs
//     every spoke's LAN; gobgp shows the summary and no spoke LAN in a
//     spoke's adj-out;
//   - a flow from s1's LAN to s2's hairpins through the hub, which
//     redirects; s1 installs a shortcut route for s2's LAN via s2 and the
//     flow goes direct over its own SA (the hub's gre1 counter stays put,
//     only ESP on s2's underlay port);
//   - dmvpnctl show dmvpn on s1 shows the peer with T1 (route installed);
//   - after the flow stops, the shortcut expires (idle: not refreshed
//     within the holding time), its route disappears on both spokes, s1
//     drops the SA with s2, and traffic still flows through the hub.
func TestBGPPhase3Summary(t *testing.T) {
	const holding = 30 * time.Second
	l, nodes := bgpLab(t, 3)
	hub, s1, s2 := nodes[0], nodes[1], nodes[2]
	spokes := nodes[1:]
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	setup := bgpWithIPsec(t, l, nodes, bgpSetup{hubMode: "summary", summaries: []netip.Prefix{bgpSummary}, holding: holding,
		redirect: true, shortcut: true})

	t0 := bgpStartAll(t, l, nodes, setup).start

	onlySummary := []bgpRoute{bgpRt(bgpSummary.String(), hub.tunnel.String())}
	var hubWant []bgpRoute
	for _, s := range spokes {
		hubWant = append(hubWant, bgpRt(s.lan.Masked().String(), s.tunnel.String()))
	}
	bgpWaitConverged(ctx, t, nodes, func(d *dnode) []bgpRoute {
		if d.hub {
			return hubWant
		}
		return onlySummary
	})
	t.Logf("timing: BGP convergence (summary on every spoke, every LAN on the hub) %v after start", bgpMS(time.Since(t0)))

	gobgpWantEstablished(ctx, t, hub, "10.0.0.2", "10.0.0.3", "10.0.0.4")
	adj, err := gobgpCLI(ctx, hub, "neighbor "+s1.tunnel.String()+" adj-out")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("hub: gobgp neighbor %s adj-out\n%s", s1.tunnel, adj)
	if !gobgpRIBHasPrefix(adj, bgpSummary) {
		t.Errorf("gobgp neighbor %s adj-out: no summary %s", s1.tunnel, bgpSummary)
	}
	for _, s := range spokes {
		if gobgpRIBHasPrefix(adj, s.lan.Masked()) {
			t.Errorf("gobgp neighbor %s adj-out: spoke LAN %s is advertised in summary mode", s1.tunnel, s.lan.Masked())
		}
	}

	// The flow: first through the hub, then a redirect and a shortcut.
	if v, err := s1.showDMVPN(ctx); err != nil {
		t.Fatal(err)
	} else if _, ok := bgpPeer(v, s2.tunnel); ok {
		t.Fatalf("s1 knows %s before any traffic: %+v", s2.tunnel, v.Peers)
	}
	t1 := time.Now()
	g1 := bgpPingThroughHub(ctx, t, s1, s2)
	if err := waitShortcutRoute(ctx, s1, s2); err != nil {
		t.Fatalf("Phase 3 shortcut: %v", err)
	}
	t.Logf("timing: first packet to shortcut route seen by the test %v", bgpMS(time.Since(t1)))
	if d, ok := bgpShortcutUpAfter(s1, g1, s2.lan.Masked()); ok {
		t.Logf("timing: first packet to shortcut up (s1's log) %v", bgpMS(d))
	}

	v, err := s1.showDMVPN(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := bgpPeer(v, s2.tunnel); !ok || !slices.Contains(p.Attrs, api.AttrRouteInstalled) {
		t.Errorf("s1 show dmvpn: peer %s without T1 (route installed) while the shortcut lives: %+v", s2.tunnel, v.Peers)
	}
	text, err := s1.ctl(ctx, "show dmvpn")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("s1: dmvpnctl show dmvpn (shortcut up)\n%s", text)
	if !bgpPeerLineHas(text, s2.tunnel, "T1") {
		t.Errorf("s1 show dmvpn: the line for %s has no T1:\n%s", s2.tunnel, text)
	}
	bgpProveDirect(ctx, t, l, hub, s1, s2, "phase3-s2")

	// The flow stops: the shortcuts expire (at most two holding times:
	// one refresh may still be due for the last traffic).
	t3 := time.Now()
	for _, s := range []*dnode{s1, s2} {
		wctx, wcancel := context.WithTimeout(ctx, 2*holding+45*time.Second)
		err := bgpWaitRoutes(wctx, s, onlySummary, false)
		wcancel()
		if err != nil {
			t.Fatalf("shortcut expiry after the flow stopped: %v", err)
		}
	}
	t.Logf("timing: shortcut routes gone %v after the flow stopped (holding time %v)", bgpMS(time.Since(t3)), holding)
	if v, err := s1.showDMVPN(ctx); err != nil {
		t.Fatal(err)
	} else if p, ok := bgpPeer(v, s2.tunnel); ok && slices.Contains(p.Attrs, api.AttrRouteInstalled) {
		t.Errorf("s1 show dmvpn: %s still has T1 after its route expired: %+v", s2.tunnel, p)
	}
	if text, err := s1.ctl(ctx, "show dmvpn"); err == nil {
		t.Logf("s1: dmvpnctl show dmvpn (shortcut expired)\n%s", text)
	}
	// The shortcut's SA goes with it.
	var ipsecText string
	sactx, sacancel := context.WithTimeout(ctx, 60*time.Second)
	defer sacancel()
	err = lab.WaitFor(sactx, 500*time.Millisecond, func(ctx context.Context) error {
		out, err := s1.ctl(ctx, "show ipsec")
		if err != nil {
			return err
		}
		ipsecText = out
		if bgpPeerLineHas(out, s2.nbma, "") {
			return fmt.Errorf("s1 still lists an SA with s2 (%s) after the shortcut expired:\n%s", s2.nbma, out)
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
	t.Logf("s1: dmvpnctl show ipsec (shortcut expired)\n%s", ipsecText)
	if err := scLANPing(ctx, s1, s2.lan.Addr(), 3); err != nil {
		t.Errorf("LAN to LAN through the hub after the shortcut expired: %v", err)
	}
}

// TestBGPPhase1 runs a hub advertising only a summary and three spokes
// with nhrp.shortcut false (the hub still redirects; the spokes ignore
// it), IPsec on: every spoke-to-spoke flow goes through the hub (its gre1
// receive counter grows by at least the requests and replies; only ESP on
// the receiving spoke's underlay port) and no spoke ever installs a
// shortcut; the hub shows three registered peers.
func TestBGPPhase1(t *testing.T) {
	l, nodes := bgpLab(t, 3)
	hub, spokes := nodes[0], nodes[1:]
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	setup := bgpWithIPsec(t, l, nodes, bgpSetup{hubMode: "summary", summaries: []netip.Prefix{bgpSummary}, redirect: true, shortcut: false})

	t0 := bgpStartAll(t, l, nodes, setup).start
	onlySummary := []bgpRoute{bgpRt(bgpSummary.String(), hub.tunnel.String())}
	bgpWaitConverged(ctx, t, spokes, func(*dnode) []bgpRoute { return onlySummary })
	t.Logf("timing: BGP convergence (summary on every spoke) %v after start", bgpMS(time.Since(t0)))

	text, err := hub.ctl(ctx, "show dmvpn")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("hub: dmvpnctl show dmvpn\n%s", text)
	for _, s := range spokes {
		if !bgpPeerLineHas(text, s.tunnel, "UP") {
			t.Errorf("hub show dmvpn: %s is not listed UP", s.tunnel)
		}
	}

	for _, s := range spokes {
		if err := bgpWaitSA(ctx, s, hub); err != nil {
			t.Fatalf("spoke-to-hub SA: %v", err)
		}
	}
	const n = 10
	for i, from := range spokes {
		to := spokes[(i+1)%len(spokes)]
		var relayed int
		// The receiving spoke's switch port carries only ESP meanwhile.
		err := l.CheckESPOnUnderlay(ctx, to.name, "phase1-"+to.name, 2*n, func(ctx context.Context) error {
			var err error
			relayed, err = hubRelayed(ctx, hub, from, to, n)
			return err
		})
		if err != nil {
			t.Fatalf("LAN to LAN through the hub: %v", err)
		}
		t.Logf("hub gre1 received %d packets during %d pings %s LAN -> %s LAN", relayed, n, from.name, to.name)
		if relayed < 2*n {
			t.Errorf("hub gre1 received %d packets during %d pings %s -> %s, want >= %d (requests and replies through the hub)",
				relayed, n, from.name, to.name, 2*n)
		}
	}
	// The hub did redirect; the spokes dropped the indications.
	for _, s := range spokes {
		wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
		err := lab.WaitFor(wctx, 500*time.Millisecond, func(ctx context.Context) error {
			c, err := nodeCounters(ctx, s)
			if err != nil {
				return err
			}
			if c["traffic_indications_ignored"] == 0 {
				return fmt.Errorf("%s: traffic_indications_ignored is 0: the hub's redirect did not arrive or was not ignored", s.name)
			}
			return nil
		})
		wcancel()
		if err != nil {
			t.Error(err)
		}
	}
	for _, s := range spokes {
		if got, err := bgpKernelRoutes(ctx, s); err != nil {
			t.Fatal(err)
		} else if !slices.Equal(got, onlySummary) {
			t.Errorf("%s: routes %q after the traffic, want only %q (no shortcut in Phase 1)", s.name, got, onlySummary)
		}
		v, err := s.showDMVPN(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range v.Peers {
			if p.Tunnel != hub.tunnel {
				t.Errorf("%s show dmvpn: peer %s besides the hub in Phase 1: %+v", s.name, p.Tunnel, p)
			}
		}
	}
}

// bgpPeerLineHas reports whether the show dmvpn table line for the peer with
// tunnel address addr contains the word w.
func bgpPeerLineHas(table string, addr netip.Addr, w string) bool {
	for line := range strings.SplitSeq(table, "\n") {
		f := strings.Fields(line)
		if slices.Contains(f, addr.String()) && slices.ContainsFunc(f, func(s string) bool { return strings.Contains(s, w) }) {
			return true
		}
	}
	return false
}
