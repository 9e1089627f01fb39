package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/dmvpnd/dmvpnd/e2e/lab"
)

// demoIPsec reports whether the demo protects GRE with IPsec (one charon
// per node, dmvpnd driving it over VICI with a pre-shared key):
// DMVPND_DEMO_IPSEC=1 turns it on, =0 off; unset means demoIPsecDefault.
func demoIPsec() bool {
	switch os.Getenv("DMVPND_DEMO_IPSEC") {
	case "1":
		return true
	case "0":
		return false
	}
	return demoIPsecDefault
}

const demoIPsecDefault = true

// TestDemo is `make demo`: one hub and two spokes running dmvpnd with BGP
// in Phase 3 (the hub advertises only a summary of the spoke LANs and
// redirects), a ping between the spoke LANs, and the state of every node
// before and after the NHRP shortcut forms. It passes only when the
// shortcut carried the traffic: while s1 pings s2's LAN over it, the hub's
// tunnel sees (almost) none of those packets and s2's sees all of them.
//
// It runs only with DMVPND_DEMO=1 besides DMVPND_LAB_TESTS=1, so that
// `make test` does not run it a second time.
func TestDemo(t *testing.T) {
	if os.Getenv("DMVPND_DEMO") != "1" {
		t.Skip("the demo runs with DMVPND_DEMO=1 (make demo)")
	}
	if !lab.Enabled() {
		t.Skip("lab tests run with DMVPND_LAB_TESTS=1")
	}
	say := func(format string, args ...any) { fmt.Printf(format+"\n", args...) }
	heading := func(s string) { say("\n==== %s %s", s, strings.Repeat("=", max(3, 70-len(s)))) }
	ipsecOn := demoIPsec()
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()

	heading("1. Build")
	tb := time.Now()
	bin, err := binaries()
	if err != nil {
		t.Fatal(err)
	}
	say("dmvpnd and dmvpnctl built into %s (%v)", bin, bgpMS(time.Since(tb)))

	heading("2. Boot the lab")
	say("A qemu guest (the host kernel has no GRE) with one network namespace per node;")
	say("the underlay is a bridge, each node's LAN a dummy interface.")
	setup := bgpSetup{hubMode: "summary", summaries: []netip.Prefix{bgpSummary}, holding: 60 * time.Second,
		redirect: true, shortcut: true}
	tl := time.Now()
	l, nodes := bgpLab(t, 2)
	hub, s1, s2 := nodes[0], nodes[1], nodes[2]
	say("lab up in %v (results and logs: %s)", bgpMS(time.Since(tl)), l.Dir())
	say("")
	say("  %-4s %-15s %-12s %-14s", "node", "NBMA (underlay)", "tunnel", "LAN")
	for _, d := range nodes {
		say("  %-4s %-15s %-12s %-14s", d.name, d.nbma, d.tunnel, d.lan)
	}

	if ipsecOn {
		heading("2b. Start strongSwan (charon) on every node")
		setup = bgpWithIPsec(t, l, nodes, setup)
		for _, d := range nodes {
			say("%s: charon up, vici socket %s", d.name, setup.vici[d.name])
		}
	}

	heading("3. Start dmvpnd on every node")
	say("hub: NHRP server with redirects; BGP AS 65000, spokes accepted as dynamic neighbors from")
	say("     10.0.0.0/24, advertising only the summary %s (Phase 3)", bgpSummary)
	say("spokes: register with the hub (NHRP), peer with it over iBGP, advertise their LAN")
	st := bgpStartAll(t, l, nodes, setup)
	tReg, tReady := st.registered, st.ready
	onlySummary := []bgpRoute{bgpRt(bgpSummary.String(), hub.tunnel.String())}
	bgpWaitConverged(ctx, t, []*dnode{s1, s2}, func(*dnode) []bgpRoute { return onlySummary })
	tBGP := time.Since(st.start)
	say("both spokes registered %v after start, their BGP sessions up after %v, the summary route in both kernels after %v",
		bgpMS(tReg), bgpMS(tReady), bgpMS(tBGP))

	show := func(when string) {
		for _, d := range nodes {
			out, err := d.ctl(ctx, "show dmvpn")
			if err != nil {
				t.Fatal(err)
			}
			say("\n--- %s: dmvpnctl show dmvpn (%s)\n%s", d.name, when, out)
			res, err := d.node.Run(ctx, "ip route show proto 157")
			if err != nil {
				t.Fatal(err)
			}
			say("--- %s: routes installed by dmvpnd (ip route show proto 157)\n%s", d.name, res.Stdout)
		}
	}
	heading("4. Before any spoke-to-spoke traffic")
	say("Each spoke knows only the hub; its only overlay route is the summary via the hub.")
	show("before the shortcut")

	heading("5. Ping from s1's LAN to s2's LAN")
	say("The first packets go s1 -> hub -> s2. The hub sees a packet enter and leave its tunnel,")
	say("sends s1 an NHRP Traffic Indication; s1 resolves s2's LAN through the hub, s2 answers,")
	say("and s1 installs a shortcut route for s2's LAN straight to s2.")
	t1 := time.Now()
	g1, res, err := bgpPingFrom(ctx, s1, s2, 3)
	if err != nil {
		t.Fatal(err)
	}
	say("$ ping -c 3 -I %s %s   (on s1)\n%s", s1.lan.Addr(), s2.lan.Addr(), res.Stdout)
	shortcut := bgpRt(s2.lan.Masked().String(), s2.tunnel.String())
	if err := waitShortcutRoute(ctx, s1, s2); err != nil {
		t.Fatalf("no shortcut: %v", err)
	}
	tShortcut := time.Since(t1)
	if d, ok := bgpShortcutUpAfter(s1, g1, s2.lan.Masked()); ok {
		tShortcut = d // precise: from s1's dmvpnd log, on the guest's clock
	}
	say("shortcut route %q on s1 %v after the first packet", shortcut, bgpMS(tShortcut))

	heading("6. After the shortcut formed")
	say("s1 and s2 now list each other (attribute T1: shortcut route installed).")
	show("with the shortcut")

	heading("7. Does the shortcut carry the traffic?")
	hubBefore, err := tunnelRxPackets(ctx, hub)
	if err != nil {
		t.Fatal(err)
	}
	s2Before, err := tunnelRxPackets(ctx, s2)
	if err != nil {
		t.Fatal(err)
	}
	const n = 20
	pings := func(ctx context.Context) error {
		res, err = s1.node.Exec(ctx, fmt.Sprintf("ping -n -q -c %d -i 0.05 -W 2 -I %s %s", n, s1.lan.Addr(), s2.lan.Addr()))
		return err
	}
	var espErr error
	if ipsecOn {
		// Capture on s2's switch port meanwhile: only ESP, no cleartext GRE.
		espErr = l.CheckESPOnUnderlay(ctx, s2.name, "demo-s2", n, pings)
	} else if err := pings(ctx); err != nil {
		t.Fatal(err)
	}
	say("$ ping -q -c %d -I %s %s   (on s1)\n%s", n, s1.lan.Addr(), s2.lan.Addr(), res.Stdout)
	hubAfter, err := tunnelRxPackets(ctx, hub)
	if err != nil {
		t.Fatal(err)
	}
	s2After, err := tunnelRxPackets(ctx, s2)
	if err != nil {
		t.Fatal(err)
	}
	say("packets received on gre1 during the %d pings:  hub %d   s2 %d", n, hubAfter-hubBefore, s2After-s2Before)
	direct := res.Exit == 0 && hubAfter-hubBefore < n/2 && s2After-s2Before >= n
	if ipsecOn {
		// Addresses and SPIs only: ip xfrm state would print the keys.
		out, err := s1.node.Run(ctx, "ip xfrm state | grep -E '^src|proto esp'")
		if err != nil {
			t.Fatal(err)
		}
		say("\n--- s1: IPsec security associations (ip xfrm state, keys left out)\n%s", out.Stdout)
		if out, err := s1.ctl(ctx, "show ipsec"); err == nil {
			say("--- s1: dmvpnctl show ipsec\n%s", out)
		}
		if espErr != nil {
			say("FAIL: s2's underlay carried something else than ESP: %v", espErr)
			t.Fatalf("IPsec: %v", espErr)
		}
		say("s2's underlay port carried only ESP (no cleartext GRE) during the pings")
	}

	heading("8. BGP on the hub, seen by the stock gobgp CLI")
	for _, args := range []string{"neighbor", "global rib"} {
		out, err := gobgpCLI(ctx, hub, args)
		if err != nil {
			t.Fatal(err)
		}
		say("$ gobgp --target %s %s   (on the hub)\n%s", gobgpTarget(hub), args, out)
	}

	heading("Result")
	say("registration after start          %v", bgpMS(tReg))
	say("BGP sessions up after start       %v", bgpMS(tReady))
	say("BGP convergence after start       %v", bgpMS(tBGP))
	say("first packet to shortcut route    %v", bgpMS(tShortcut))
	if !direct {
		say("FAIL: the traffic did not take the shortcut (hub saw %d packets, s2 %d, ping exit %d)",
			hubAfter-hubBefore, s2After-s2Before, res.Exit)
		t.Fatalf("the shortcut did not carry the traffic: hub gre1 +%d, s2 gre1 +%d packets during %d pings",
			hubAfter-hubBefore, s2After-s2Before, n)
	}
	say("OK: s1 -> s2 traffic went spoke to spoke over the NHRP shortcut")
}
