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
	if c, err = settledCounters(ctx, hub); err != nil {
		t.Error(err)
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
