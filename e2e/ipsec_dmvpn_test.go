package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/dmvpnd/dmvpnd/e2e/lab"
)

// TestDMVPNIPsecPhase3 is TestDMVPNPhase3 with IPsec: a hub and two
// spokes, each with its own charon that dmvpnd drives over VICI (PSK),
// static routes (spokes reach the other LANs through a summary via the
// hub). It checks, with real packets:
//   - each spoke registers only once its SA to the hub is up (the SA's
//     "up" precedes "registered" in the spoke's log, the hub counted no
//     unprotected NHRP, and no cleartext GRE crossed the spokes' bridge
//     ports while they registered);
//   - hub <-> spoke and LAN-to-LAN pings (through the hub) work;
//   - the Phase 3 shortcut forms and a spoke-to-spoke SA comes up on
//     demand: exactly one IKE_SA with one CHILD_SA between s1 and s2 on
//     both charons, one ESP state per direction in both kernels;
//   - the flow then goes direct (the hub's gre1 receive counter stops
//     growing), and the underlay next to both spokes carried only ESP and
//     IKE, never cleartext GRE, for the whole test (captures on the
//     spokes' bridge ports, from before dmvpnd started).
//
// It also proves issue 17's acceptance (obsRun): the metrics endpoints of
// s1 and the hub, scraped before and after the traffic, show s1's
// registration, its shortcut (0 -> 1) and SAs (1 -> 2) and the hub's two
// peers and SAs; dmvpnctl monitor --json on s1, subscribed before s1 can
// register, prints the SA-up, registration, SA-up and shortcut-up events
// in order with monotonic timestamps; s1's show dmvpn peer s2 counts the
// pings over the shortcut on its CHILD_SA; at the end the hub's dmvpnd is
// killed, s1's dmvpnd_nhrp_nhs_up drops to 0 and promtool finds the
// shipped DMVPNSpokeNotRegistered alert firing on s1's scraped samples.
func TestDMVPNIPsecPhase3(t *testing.T) { ipdPhase3(t, ipdAuthPSK, true) }

// TestDMVPNIPsecPhase3X509 is TestDMVPNIPsecPhase3 with X.509
// authentication: every node's certificate, key and the CA are files named
// in dmvpnd's config (passed to charon as blobs over VICI); certificates
// carry the node's NBMA address as IP SAN and are issued by a throw-away
// CA.
func TestDMVPNIPsecPhase3X509(t *testing.T) { ipdPhase3(t, ipdAuthX509, false) }

// ipdPhase3 runs the scenario; observe adds issue 17's checks (obsRun).
func ipdPhase3(t *testing.T, auth ipdAuth, observe bool) {
	l, nodes := dmvpnLab(t, 2)
	hub, s1, s2 := nodes[0], nodes[1], nodes[2]
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	defer func() {
		if t.Failed() {
			ipdLogState(ctx, t, nodes...)
		}
	}()

	charons := ipdStartCharonsAuth(t, l, auth, nodes...)
	// Every GRE packet to or from a spoke crosses its bridge port: capture
	// there from before dmvpnd starts until the end.
	var caps []*ipdCapture
	for _, s := range []*dnode{s1, s2} {
		c, err := ipdStartCapture(ctx, l, s.name, "ipd-"+s.name)
		if err != nil {
			t.Fatal(err)
		}
		caps = append(caps, c)
	}

	// Log timestamps come from the lab's clock: convert test times to it.
	offset, err := ipdClockOffset(ctx, hub)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("lab clock - test clock: %v", scMS(offset))
	var obs *obsRun
	if observe {
		obs = obsPrepare(t, hub, s1, s2, charons[s1].Socket, offset)
	}
	hub.start(t, l)
	hub.waitReady(t, 60*time.Second)
	t0 := time.Now()
	for _, s := range []*dnode{s1, s2} {
		s.start(t, l)
	}
	if obs != nil {
		obs.from = t0.Add(offset)
		obs.startMonitor(ctx, t)
	}
	for _, s := range []*dnode{s1, s2} {
		s.waitReady(t, 120*time.Second)
	}
	t.Logf("timing: both spokes registered %v after their start", scMS(time.Since(t0)))
	for _, s := range []*dnode{s1, s2} {
		if err := ipdWaitPeerUp(ctx, hub, s.tunnel, 30*time.Second); err != nil {
			t.Fatal(err)
		}
		sas, err := ipdShowIPsec(ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		if st := ipdSAState(sas, hub.nbma); st != "ESTABLISHED" {
			t.Errorf("%s registered but show ipsec --json says its SA with the hub is %q: %+v", s.name, st, sas)
		}
		log := ipdLog(t, s)
		up, okUp := ipdFirst(log, time.Time{}, ipdSAUp(hub.nbma))
		reg, okReg := ipdFirst(log, time.Time{}, ipdRegistered(hub.nbma))
		switch {
		case !okUp || !okReg:
			t.Errorf("%s log: SA up found %v (%v), registered found %v (%v)", s.name, okUp, up, okReg, reg)
		case reg.Before(up):
			t.Errorf("%s registered at %v, before its SA with the hub came up at %v", s.name, reg, up)
		default:
			t.Logf("timing: %s SA with the hub up %v after its start, registered %v later",
				s.name, scMS(up.Sub(t0.Add(offset))), scMS(reg.Sub(up)))
		}
	}
	c, err := nodeCounters(ctx, hub)
	if err != nil {
		t.Fatal(err)
	}
	if c["nhrp_drop_untrusted"] != 0 {
		t.Errorf("hub counted %d NHRP packets without an SA (drop_untrusted) while the spokes registered", c["nhrp_drop_untrusted"])
	}

	// Static routing: spokes send 10.1.0.0/16 to the hub; the hub knows
	// each spoke's LAN.
	for _, s := range []*dnode{s1, s2} {
		s.node.MustRun("ip route replace 10.1.0.0/16 via 10.0.0.1 dev gre1 onlink")
		hub.node.MustRun(fmt.Sprintf("ip route replace %s via %s dev gre1 onlink", s.lan.Masked(), s.tunnel))
	}
	for _, s := range []*dnode{s1, s2} {
		if err := s.node.Ping(ctx, hub.tunnel, 3); err != nil {
			t.Fatalf("%s -> hub over IPsec: %v", s.name, err)
		}
		if err := hub.node.Ping(ctx, s.tunnel, 3); err != nil {
			t.Fatalf("hub -> %s over IPsec: %v", s.name, err)
		}
	}
	if obs != nil {
		obs.before(ctx, t)
	}

	// First packets go through the hub and trigger the redirect; the
	// shortcut needs the s1-s2 SA, which IKE brings up on demand.
	// date stamps the first packet on the lab's clock (the logs' clock).
	t1 := time.Now()
	ping := fmt.Sprintf("date +%%s.%%N && ping -n -c 3 -i 0.2 -W 2 -I %s %s", s1.lan.Addr(), s2.lan.Addr())
	res, err := s1.node.Run(ctx, ping)
	if err != nil {
		t.Fatalf("LAN to LAN through the hub: %v", err)
	}
	t1g, err := ipdParseDate(string(res.Stdout))
	if err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 90*time.Second)
	err = waitShortcutRoute(wctx, s1, s2)
	wcancel()
	if err != nil {
		t.Fatal(err)
	}
	shortcut := time.Since(t1)
	if err := ipdWaitSA(ctx, s1, s2.nbma, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	t.Logf("timing: first packet to shortcut (IKE included) %v; s1-s2 SA established %v after the first packet",
		scMS(shortcut), scMS(time.Since(t1)))
	s1log := ipdLog(t, s1)
	if up, ok := ipdFirst(s1log, t1g, ipdSAUp(s2.nbma)); ok {
		t.Logf("timing: s1's log: SA with s2 up %v after the first packet", scMS(up.Sub(t1g)))
	}
	if up, ok := ipdFirst(s1log, t1g, ipdShortcutUp(s2.lan.Masked())); ok {
		t.Logf("timing: s1's log: shortcut's direct path confirmed %v after the first packet", scMS(up.Sub(t1g)))
	}

	// Both ends got a traffic indication; exactly one IKE_SA and one
	// CHILD_SA must remain for the pair.
	if err := ipdWaitOnePair(ctx, s1, s2, charons[s1], charons[s2], 45*time.Second); err != nil {
		t.Fatalf("s1-s2 SAs: %v", err)
	}

	// The flow now goes direct: once s1's neighbor entry for s2 points at
	// s2 (direct path confirmed over the new SA), the hub's tunnel sees
	// (almost) nothing.
	if err := ipdWaitNeigh(ctx, s1, s2.tunnel, s2.nbma, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if obs != nil {
		obs.beforePing(ctx, t)
	}
	relayed, err := hubRelayed(ctx, hub, s1, s2, 20)
	if err != nil {
		t.Fatalf("LAN to LAN over the shortcut: %v", err)
	}
	// 20 echo requests would add 20 packets through the hub; NHRP
	// refreshes may add a few.
	if relayed >= 10 {
		t.Errorf("hub gre1 received %d packets during 20 pings over the shortcut: traffic still goes through the hub", relayed)
	}
	// Still one pair of SAs after the traffic (no late duplicate). One
	// look runs six commands: under a loaded host each takes up to 6 s.
	if err := ipdWaitOnePair(ctx, s1, s2, charons[s1], charons[s2], 45*time.Second); err != nil {
		t.Errorf("s1-s2 SAs after the direct traffic: %v", err)
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
	if obs == nil {
		ipdLogState(ctx, t, hub, s1)
		return
	}
	obs.afterKill(ctx, t, killed)
	ipdLogState(ctx, t, s1)
}

// TestDMVPNIPsecUnprotectedPeer: NHRP from a peer without an SA changes
// nothing. The hub and s1 run IPsec; s2 runs dmvpnd without IPsec and no
// charon, so its registrations reach the hub as cleartext GRE (the hub's
// kernel has no policy for it). The hub's cleartext GRE guard must drop
// and count them before they reach dmvpnd (its NHRP engine sees none), the
// hub must not list s2 in show dmvpn nor program a neighbor for it, and
// must not answer; s1 stays registered. (The engine's own refusal of NHRP
// without an SA, behind the guard, is unit-tested in nhrp/engine.)
func TestDMVPNIPsecUnprotectedPeer(t *testing.T) {
	l, nodes := dmvpnLab(t, 2)
	hub, s1, s2 := nodes[0], nodes[1], nodes[2]
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	defer func() {
		if t.Failed() {
			ipdLogState(ctx, t, nodes...)
		}
	}()
	ipdStartCharons(t, hub, s1)
	hub.start(t, l)
	hub.waitReady(t, 60*time.Second)
	s1.start(t, l)
	s1.waitReady(t, 120*time.Second)
	if err := ipdWaitPeerUp(ctx, hub, s1.tunnel, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	base, err := nodeCounters(ctx, hub)
	if err != nil {
		t.Fatal(err)
	}

	s2.start(t, l)
	// Wait until the hub has dropped several of s2's registrations.
	var c map[string]uint64
	wctx, wcancel := context.WithTimeout(ctx, 60*time.Second)
	err = lab.WaitFor(wctx, 500*time.Millisecond, func(ctx context.Context) error {
		got, err := nodeCounters(ctx, hub)
		if err != nil {
			return err
		}
		c = got
		const k = "ipsec_gre_clear_in_dropped"
		if got[k] < base[k]+2 {
			return fmt.Errorf("hub %s %d (before s2 started: %d)", k, got[k], base[k])
		}
		return nil
	})
	wcancel()
	if err != nil {
		t.Fatalf("the hub's GRE guard never counted the unprotected spoke's cleartext GRE: %v", err)
	}
	t.Logf("hub counters after s2's attempts: gre_clear_in_dropped %d, drop_untrusted %d, rx_packets %d, registrations_accepted %d (before: %d, %d, %d, %d)",
		c["ipsec_gre_clear_in_dropped"], c["nhrp_drop_untrusted"], c["nhrp_rx_packets"], c["nhrp_registrations_accepted"],
		base["ipsec_gre_clear_in_dropped"], base["nhrp_drop_untrusted"], base["nhrp_rx_packets"], base["nhrp_registrations_accepted"])
	if c["nhrp_drop_untrusted"] != base["nhrp_drop_untrusted"] {
		t.Errorf("cleartext NHRP passed the hub's kernel guard: the engine dropped %d as untrusted",
			c["nhrp_drop_untrusted"]-base["nhrp_drop_untrusted"])
	}

	v, err := hub.showDMVPN(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range v.Peers {
		if p.Tunnel == s2.tunnel || p.NBMA == s2.nbma {
			t.Errorf("hub show dmvpn lists the unprotected peer: %+v", p)
		}
	}
	if st := ipdPeerState(v, s1.tunnel); st != "UP" {
		t.Errorf("hub show dmvpn: s1 is %q, want UP", st)
	}
	res, err := hub.node.Run(ctx, "ip neigh show dev gre1 "+s2.tunnel.String())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(res.Stdout), s2.nbma.String()) {
		t.Errorf("hub programmed a neighbor for the unprotected peer: %s", res.Stdout)
	}
	if c["nhrp_registrations_accepted"] != base["nhrp_registrations_accepted"] {
		t.Errorf("hub accepted %d registrations while only the unprotected peer was registering",
			c["nhrp_registrations_accepted"]-base["nhrp_registrations_accepted"])
	}
	// The hub never answered: s2's dmvpnd received no NHRP at all.
	sc, err := nodeCounters(ctx, s2)
	if err != nil {
		t.Fatal(err)
	}
	if sc["nhrp_rx_packets"] != 0 {
		t.Errorf("the unprotected spoke received %d NHRP packets from the IPsec hub", sc["nhrp_rx_packets"])
	}
	out, err := s2.ctl(ctx, "status")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "not registered") {
		t.Errorf("s2 status should say it is not registered:\n%s", out)
	}
	// A protected peer is still served: s1 reaches the hub over its SA.
	if err := s1.node.Ping(ctx, hub.tunnel, 3); err != nil {
		t.Errorf("s1 -> hub: %v", err)
	}
	ipdLogState(ctx, t, hub)
}

// TestDMVPNIPsecCharonRestart: stopping a spoke's charon and starting it
// again, without touching dmvpnd, brings its SA with the hub back (the
// ipsec manager reconnects to the new charon, reloads its connections and
// initiates), the spoke's registration stays or returns, and hub <-> spoke
// traffic crosses the underlay as ESP again. "stop" is a clean stop
// (SIGTERM: charon deletes its SAs); "crash" is SIGKILL: the kernel keeps
// the old SAs and policies and the hub is not told. Both run on one lab,
// in that order: each starts from s1 registered (the hub lists it UP) over
// one IKE and one CHILD SA and a ping answered, which is where the stop
// leaves the cloud.
func TestDMVPNIPsecCharonRestart(t *testing.T) {
	l, nodes := dmvpnLab(t, 1)
	hub, s1 := nodes[0], nodes[1]
	charons := ipdStartCharons(t, hub, s1)
	hub.start(t, l)
	hub.waitReady(t, 60*time.Second)
	s1.start(t, l)
	s1.waitReady(t, 120*time.Second)
	for _, tc := range []struct{ name, signal string }{{"stop", "TERM"}, {"crash", "KILL"}} {
		if !t.Run(tc.name, func(t *testing.T) { ipdCharonRestart(t, l, hub, s1, charons, tc.signal) }) {
			return // s1's charon is in no known state for the next restart
		}
	}
}

// ipdCharonRestart restarts s1's charon with signal (one subtest of
// TestDMVPNIPsecCharonRestart); charons is updated with the new one.
func ipdCharonRestart(t *testing.T, l *lab.Lab, hub, s1 *dnode, charons map[*dnode]*lab.Charon, signal string) {
	ctx, cancel := context.WithTimeout(context.Background(), 14*time.Minute)
	defer cancel()
	defer func() {
		if t.Failed() {
			ipdLogState(ctx, t, hub, s1)
		}
	}()
	if err := ipdWaitPeerUp(ctx, hub, s1.tunnel, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if ike, child, raw, err := ipdCharonSAs(ctx, charons[s1], hub.nbma); err != nil || ike != 1 || child != 1 {
		t.Fatalf("s1's charon before the restart: %d IKE_SAs, %d CHILD_SAs with the hub, want 1 and 1 (%v):\n%s", ike, child, err, raw)
	}
	if err := s1.node.Ping(ctx, hub.tunnel, 3); err != nil {
		t.Fatalf("s1 -> hub before the restart: %v", err)
	}
	if signal == "KILL" {
		// Issue 15 on the same boot: the system's swanctl, an operator's
		// swanctl --load-all and a kill -9 against the hub's charon.
		ipdSharedCharon(ctx, t, hub, s1, charons)
	}
	dpid := s1.proc.PID

	// Stop s1's charon and start a fresh one with the same configuration
	// and socket path.
	old := charons[s1]
	if signal == "TERM" {
		if err := old.Proc.Stop(ctx); err != nil {
			t.Fatal(err)
		}
	} else {
		s1.node.MustRun(fmt.Sprintf("kill -%s %d", signal, old.Proc.PID))
		wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
		err := lab.WaitFor(wctx, 200*time.Millisecond, func(ctx context.Context) error {
			if old.Proc.Alive(ctx) {
				return fmt.Errorf("charon %d still runs after SIG%s", old.Proc.PID, signal)
			}
			return nil
		})
		wcancel()
		if err != nil {
			t.Fatal(err)
		}
	}
	if res, err := s1.node.Exec(ctx, "ip xfrm state count; ip xfrm policy count"); err == nil {
		t.Logf("s1 after charon got SIG%s: %s", signal, strings.Join(strings.Fields(string(res.Stdout)), " "))
	}
	s1.node.MustRun("rm -f " + old.Socket)
	t0 := time.Now()
	nc, err := s1.node.StartCharon(ctx, lab.CharonConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if nc.Socket != old.Socket {
		t.Fatalf("restarted charon listens on %s, dmvpnd on %s", nc.Socket, old.Socket)
	}
	charons[s1] = nc
	if err := ipdWaitSA(ctx, s1, hub.nbma, 90*time.Second); err != nil {
		t.Fatalf("after the charon restart: %v", err)
	}
	t.Logf("timing: SA with the hub back %v after charon restarted", scMS(time.Since(t0)))
	ike, child, raw, err := ipdCharonSAs(ctx, nc, hub.nbma)
	if err != nil {
		t.Fatal(err)
	}
	if ike != 1 || child != 1 {
		t.Errorf("new charon: %d IKE_SAs, %d CHILD_SAs with the hub, want 1 and 1:\n%s", ike, child, raw)
	}
	if err := ipdWaitPeerUp(ctx, hub, s1.tunnel, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	s1.waitReady(t, 60*time.Second)
	t.Logf("timing: registered and hub lists s1 UP %v after charon restarted", scMS(time.Since(t0)))
	if !s1.proc.Alive(ctx) || s1.proc.PID != dpid {
		t.Errorf("dmvpnd on s1 is not the process started before the charon restart")
	}
	err = l.CheckESPOnUnderlay(ctx, s1.name, "ipd-restart-s1", 4, func(ctx context.Context) error {
		pctx, pcancel := context.WithTimeout(ctx, 30*time.Second)
		defer pcancel()
		if err := s1.node.WaitPing(pctx, hub.tunnel); err != nil {
			return fmt.Errorf("s1 -> hub: %w", err)
		}
		return hub.node.Ping(pctx, s1.tunnel, 3)
	})
	if err != nil {
		t.Errorf("hub <-> s1 over the new SA: %v", err)
	}
	// The hub's charon holds exactly one IKE_SA with s1 (the new one
	// replaced the old, if the old was not deleted).
	ike, child, raw, err = ipdCharonSAs(ctx, charons[hub], s1.nbma)
	if err != nil {
		t.Fatal(err)
	}
	if ike != 1 || child != 1 {
		t.Errorf("hub charon: %d IKE_SAs, %d CHILD_SAs with s1, want 1 and 1:\n%s", ike, child, raw)
	}
	// After a crash the old charon's kernel SAs stay behind (the new
	// charon does not know them; the kernel expires them at their hard
	// lifetime): report them.
	out, _ := s1.node.Exec(ctx, "ip xfrm state count; ip xfrm policy count")
	t.Logf("s1 after recovery: %s", strings.Join(strings.Fields(string(out.Stdout)), " "))
	ipdLogState(ctx, t, hub, s1)
}

// TestIPDCountSAs checks the swanctl --list-sas --raw parser.
func TestIPDCountSAs(t *testing.T) {
	peer := netip.MustParseAddr("198.51.100.3")
	raw := "list-sa event {dmvpn-peer-198.51.100.3 {uniqueid=3 version=2 state=ESTABLISHED local-host=198.51.100.2 local-port=500 remote-host=198.51.100.3 remote-port=500 child-sas {gre-4 {name=gre uniqueid=4 state=INSTALLED mode=TRANSPORT}}}}\n" +
		"list-sa event {dmvpn-responder {uniqueid=5 version=2 state=CONNECTING local-host=198.51.100.2 remote-host=198.51.100.30 remote-port=500 child-sas {}}}\n" +
		"list-sa event {dmvpn-responder {uniqueid=6 version=2 state=ESTABLISHED local-host=198.51.100.2 remote-host=198.51.100.3 remote-port=500 child-sas {gre-7 {name=gre state=INSTALLED mode=TRANSPORT} gre-8 {name=gre state=INSTALLED mode=TRANSPORT}}}}\n"
	ike, child := ipdCountSAs(raw, peer)
	if ike != 2 || child != 3 {
		t.Errorf("ipdCountSAs = %d IKE, %d CHILD; want 2, 3", ike, child)
	}
	if ike, child := ipdCountSAs("", peer); ike != 0 || child != 0 {
		t.Errorf("empty: %d, %d", ike, child)
	}
}

// TestIPDParseDate checks the parser of `date +%s.%N` output.
func TestIPDParseDate(t *testing.T) {
	got, err := ipdParseDate("1700000000.012345678\nPING 10.1.2.1 ...\n")
	if err != nil || !got.Equal(time.Unix(1700000000, 12345678)) {
		t.Errorf("ipdParseDate = %v, %v; want %v", got, err, time.Unix(1700000000, 12345678))
	}
	if _, err := ipdParseDate("PING"); err == nil {
		t.Error("ipdParseDate accepted garbage")
	}
}
