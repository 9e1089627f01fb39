package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/dmvpnd/dmvpnd/controller/api"
	"github.com/dmvpnd/dmvpnd/e2e/lab"
)

// TestDMVPNPhase3 runs dmvpnd on a hub and two spokes with static routes
// (each spoke reaches the other LANs through a summary via the hub), as
// three variants on one lab, each from a fresh start of every daemon:
// plain GRE, IPsec with a group PSK and IPsec with X.509 (every node's
// certificate, key and CA are files named in dmvpnd's config, passed to
// charon over VICI; certificates carry the node's NBMA address as IP SAN).
// With IPsec each node has its own charon that dmvpnd drives over VICI.
// Each variant checks, with real packets:
//   - both spokes register (dmvpnctl status --wait) and the hub's show
//     dmvpn lists both, UP, at their NBMA addresses; with IPsec each
//     spoke registers only over its SA to the hub (its show ipsec SA came
//     up before its show nhrp nhs registration, the hub counted no
//     unprotected NHRP, and no cleartext GRE crossed the spokes' bridge
//     ports);
//   - hub <-> spoke tunnel pings work both ways;
//   - LAN-to-LAN traffic first flows through the hub; the hub's hairpin
//     trigger makes it send a traffic indication, s1 resolves s2's LAN and
//     installs a shortcut route (proto 157) whose neighbour entry points
//     straight at s2; with IPsec the s1-s2 SA comes up on demand: exactly
//     one IKE_SA with one CHILD_SA between s1 and s2 on both charons, one
//     ESP state per direction in both kernels, before and after the
//     traffic;
//   - the flow then goes direct: the hub's gre1 receive counter stays
//     flat while s1 pings s2's LAN 20 times; with IPsec the underlay next
//     to both spokes carried only ESP and IKE for the whole variant
//     (captures on the spokes' bridge ports from before dmvpnd started).
//
// plain also proves that a SIGHUP with changed NHRP settings restarts s1's
// engine without touching the shortcut route, which keeps carrying the
// flow. psk also proves issue 17's acceptance (obsRun): the metrics
// endpoints of s1 and the hub, scraped before and after the traffic, show
// s1's registration, its shortcut (0 -> 1) and SAs (1 -> 2) and the hub's
// two peers and SAs; dmvpnctl monitor --json on s1, subscribed before s1
// can register, prints the SA-up, registration, SA-up and shortcut-up
// events in order with monotonic timestamps; s1's show dmvpn peer s2
// counts the pings over the shortcut on its CHILD_SA; at the end the
// hub's dmvpnd is killed, s1's dmvpnd_nhrp_nhs_up drops to 0 and promtool
// finds the shipped DMVPNSpokeNotRegistered alert firing on s1's scraped
// samples.
func TestDMVPNPhase3(t *testing.T) {
	l, nodes := dmvpnLab(t, 2)
	for _, v := range []phase3Variant{
		{name: "plain", ipsec: scIPsecNone, reload: true},
		{name: "psk", ipsec: scIPsecPSK, observe: true},
		{name: "x509", ipsec: scIPsecX509},
	} {
		if !scRunVariant(t, l, nodes, v.name, v.ipsec, func(t *testing.T, r *scRun) { phase3(t, r, v) }) {
			return
		}
	}
}

// phase3Variant is one variant of TestDMVPNPhase3.
type phase3Variant struct {
	name  string
	ipsec scIPsec
	// reload: s1 is reloaded (SIGHUP) with a new holding time while its
	// shortcut carries a flow.
	reload bool
	// observe: issue 17's checks (obsRun).
	observe bool
}

func phase3(t *testing.T, r *scRun, v phase3Variant) {
	hub, s1, s2 := r.nodes[0], r.nodes[1], r.nodes[2]
	spokes := []*dnode{s1, s2}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	defer func() {
		if t.Failed() {
			ipdLogState(ctx, t, r.nodes...)
		}
	}()

	// Every GRE packet to or from a spoke crosses its bridge port: capture
	// there from before dmvpnd starts until the end.
	var caps []*ipdCapture
	if r.protected() {
		for _, s := range spokes {
			c, err := ipdStartCapture(ctx, r.l, s.name, r.name+"-"+s.name)
			if err != nil {
				t.Fatal(err)
			}
			caps = append(caps, c)
		}
	}
	var obs *obsRun
	if v.observe {
		// The monitor's and metrics' timestamps come from the lab's
		// clock: convert test times to it.
		offset, err := ipdClockOffset(ctx, hub)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("lab clock - test clock: %v", scMS(offset))
		obs = obsPrepare(t, hub, s1, s2, r.charons[s1].Socket, offset)
	}

	hub.start(t, r.l)
	hub.waitReady(t, 60*time.Second)
	t0 := time.Now()
	for _, s := range spokes {
		s.start(t, r.l)
	}
	if obs != nil {
		obs.from = t0.Add(obs.offset)
		obs.startMonitor(ctx, t)
	}
	for _, s := range spokes {
		s.waitReady(t, 120*time.Second)
	}
	t.Logf("timing: both spokes registered %v after their start", scMS(time.Since(t0)))
	peers, err := scWaitPeers(ctx, hub, 30*time.Second, map[netip.Addr]netip.Addr{s1.tunnel: s1.nbma, s2.tunnel: s2.nbma})
	if err != nil {
		t.Fatal(err)
	}
	if len(peers) != 2 {
		t.Fatalf("hub show dmvpn: %d peers, want 2: %+v", len(peers), peers)
	}
	if r.protected() {
		for _, s := range spokes {
			up, reg, err := ipdRegisteredOverSA(ctx, s, hub.nbma)
			if err != nil {
				t.Error(err)
				continue
			}
			t.Logf("timing: %s registered %v after its SA with the hub came up (show ipsec, show nhrp nhs)", s.name, scMS(reg.Sub(up)))
		}
		c, err := settledCounters(ctx, hub)
		if err != nil {
			t.Fatal(err)
		}
		if c["nhrp_drop_untrusted"] != 0 {
			t.Errorf("hub counted %d NHRP packets without an SA (drop_untrusted) while the spokes registered", c["nhrp_drop_untrusted"])
		}
	}

	for _, s := range spokes {
		s.node.MustRun("ip route replace 10.1.0.0/16 via 10.0.0.1 dev gre1 onlink")
		hub.node.MustRun(fmt.Sprintf("ip route replace %s via %s dev gre1 onlink", s.lan.Masked(), s.tunnel))
	}
	for _, s := range spokes {
		if err := s.node.Ping(ctx, hub.tunnel, 3); err != nil {
			t.Fatalf("%s -> hub: %v", s.name, err)
		}
		if err := hub.node.Ping(ctx, s.tunnel, 3); err != nil {
			t.Fatalf("hub -> %s: %v", s.name, err)
		}
	}
	if obs != nil {
		obs.before(ctx, t)
	}

	// First packets go through the hub and trigger the redirect; with
	// IPsec the shortcut needs the s1-s2 SA, which IKE brings up on demand.
	t1 := time.Now()
	if res, err := scPing(ctx, s1, s1.lan.Addr(), s2.lan.Addr(), 3); err != nil || res.received == 0 {
		t.Fatalf("LAN to LAN through the hub: %v\n%s", err, res.out)
	}
	wctx, wcancel := context.WithTimeout(ctx, 90*time.Second)
	err = waitShortcutRoute(wctx, s1, s2)
	wcancel()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("timing: first packet to shortcut route %v", scMS(time.Since(t1)))
	if r.protected() {
		if err := ipdWaitSA(ctx, s1, s2.nbma, 30*time.Second); err != nil {
			t.Fatal(err)
		}
		t.Logf("timing: s1-s2 SA established %v after the first packet", scMS(time.Since(t1)))
		// Both ends got a traffic indication; exactly one IKE_SA and one
		// CHILD_SA must remain for the pair.
		if err := ipdWaitOnePair(ctx, s1, s2, r.charons[s1], r.charons[s2], 45*time.Second); err != nil {
			t.Fatalf("s1-s2 SAs: %v", err)
		}
	}
	// The flow now goes direct: once s1's neighbour entry for s2 points at
	// s2 (direct path confirmed), the hub's tunnel sees (almost) nothing.
	if err := ipdWaitNeigh(ctx, s1, s2.tunnel, s2.nbma, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	t.Logf("timing: first packet to direct path %v", scMS(time.Since(t1)))
	if obs != nil {
		obs.beforePing(ctx, t)
	}
	if err := scNotViaHub(ctx, hub, s1, s2); err != nil {
		t.Error(err)
	}
	if r.protected() {
		// Still one pair of SAs after the traffic (no late duplicate). One
		// look runs six commands: under a loaded host each takes up to 6 s.
		if err := ipdWaitOnePair(ctx, s1, s2, r.charons[s1], r.charons[s2], 45*time.Second); err != nil {
			t.Errorf("s1-s2 SAs after the direct traffic: %v", err)
		}
	}
	if v.reload {
		phase3Reload(ctx, t, r.l, hub, s1, s2)
	}
	var killed time.Time
	if obs != nil {
		obs.afterPing(ctx, t, 20)
		// Last: the hub's dmvpnd dies; s1 notices at its next refresh.
		killed = obs.killHub(ctx, t)
	}
	for _, c := range caps {
		counts, err := c.stopESPOnly(ctx, 40)
		if err != nil {
			t.Error(err)
		}
		t.Logf("bridge port %s: %d packets, ESP %d, GRE %d, UDP %d", c.port, counts.Total,
			counts.ByProto[lab.ProtoESP], counts.ByProto[lab.ProtoGRE], counts.ByProto[ipdProtoUDP])
	}
	if obs != nil {
		obs.afterKill(ctx, t, killed)
		ipdLogState(ctx, t, s1)
		return
	}
	ipdLogState(ctx, t, hub, s1)
}

// phase3Reload reloads s1 (SIGHUP) with a new NHRP holding time while it
// pings s2's LAN over its shortcut: the reload restarts s1's engine over
// the kernel state, so the shortcut route is not touched and keeps
// carrying the flow (the hub's gre1 stays quiet) while s1 registers and
// re-resolves.
func phase3Reload(ctx context.Context, t *testing.T, l *lab.Lab, hub, s1, s2 *dnode) {
	t.Helper()
	routesBefore, err := s1.node.Run(ctx, "ip route show proto 157")
	if err != nil {
		t.Fatal(err)
	}
	cfg := strings.Replace(s1.config(), "holding_time: 300s", "holding_time: 240s", 1)
	if err := l.WriteFile(ctx, s1.dir+"/dmvpnd.yaml", []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	before, err := tunnelRxPackets(ctx, hub)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s1.node.Run(ctx, fmt.Sprintf("kill -HUP %d && ping -n -c 20 -i 0.1 -W 2 -I %s %s", s1.proc.PID, s1.lan.Addr(), s2.lan.Addr())); err != nil {
		t.Fatalf("LAN to LAN across an NHRP reload: %v", err)
	}
	s1.waitReady(t, 30*time.Second)
	after, err := tunnelRxPackets(ctx, hub)
	if err != nil {
		t.Fatal(err)
	}
	if after-before >= 10 {
		t.Errorf("hub gre1 received %d packets during 20 pings across the reload: the shortcut stopped carrying the flow", after-before)
	}
	routesAfter, err := s1.node.Run(ctx, "ip route show proto 157")
	if err != nil {
		t.Fatal(err)
	}
	if string(routesAfter.Stdout) != string(routesBefore.Stdout) {
		t.Errorf("s1 routes changed across the reload:\nbefore:\n%s\nafter:\n%s", routesBefore.Stdout, routesAfter.Stdout)
	}
	if nhs, err := scNHSList(ctx, s1); err != nil || len(nhs) != 1 || nhs[0].NBMA != hub.nbma || nhs[0].State != api.NHSResponding {
		t.Errorf("s1 NHS after the reload: %s %v", scNHSStates(nhs), err)
	}
}
