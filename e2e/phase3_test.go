package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestDMVPNPhase3 runs dmvpnd on a hub and two spokes (no IPsec, static
// routes: each spoke reaches the other LANs through a summary via the
// hub). It checks, with real packets:
//   - both spokes register (dmvpnctl status --wait; the hub's show dmvpn
//     lists both);
//   - LAN-to-LAN traffic first flows through the hub (Phase 1 path);
//   - the hub's hairpin trigger makes it send a traffic indication, s1
//     resolves s2's LAN and installs a shortcut route (proto 157);
//   - afterwards the flow goes direct: the hub's tunnel receive counter
//     stops growing while s1 pings s2's LAN;
//   - a SIGHUP with changed NHRP settings restarts s1's engine without
//     touching the shortcut route, which keeps carrying the flow.
func TestDMVPNPhase3(t *testing.T) {
	l, nodes := dmvpnLab(t, 2)
	hub, s1, s2 := nodes[0], nodes[1], nodes[2]
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	t0 := time.Now()
	for _, d := range nodes {
		d.start(t, l)
	}
	for _, s := range []*dnode{s1, s2} {
		s.waitReady(t, 60*time.Second)
	}
	t.Logf("timing: registration after start %v", time.Since(t0).Round(time.Millisecond))

	// Static routing: spokes send 10.1.0.0/16 to the hub; the hub knows
	// each spoke's LAN.
	for _, s := range []*dnode{s1, s2} {
		s.node.MustRun("ip route replace 10.1.0.0/16 via 10.0.0.1 dev gre1 onlink")
		hub.node.MustRun(fmt.Sprintf("ip route replace %s via %s dev gre1 onlink", s.lan.Masked(), s.tunnel))
	}
	d, err := hub.showDMVPN(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Peers) != 2 {
		t.Fatalf("hub show dmvpn: %d peers, want 2: %+v", len(d.Peers), d.Peers)
	}

	// First packets go through the hub and trigger the redirect.
	t1 := time.Now()
	ping := fmt.Sprintf("ping -n -c 3 -i 0.2 -W 2 -I %s %s", s1.lan.Addr(), s2.lan.Addr())
	if _, err := s1.node.Run(ctx, ping); err != nil {
		t.Fatalf("LAN to LAN through the hub: %v", err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	err = waitShortcutRoute(wctx, s1, s2)
	wcancel()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("timing: first packet to shortcut %v", time.Since(t1).Round(time.Millisecond))

	// The flow now goes direct: the hub's tunnel sees (almost) nothing.
	relayed, err := hubRelayed(ctx, hub, s1, s2, 20)
	if err != nil {
		t.Fatalf("LAN to LAN over the shortcut: %v", err)
	}
	// 20 echo requests would add 20 packets through the hub; NHRP
	// refreshes may add a few.
	if relayed >= 10 {
		t.Errorf("hub gre1 received %d packets during 20 pings over the shortcut: traffic still goes through the hub", relayed)
	}
	// A reload that changes NHRP settings restarts s1's engine over the
	// kernel state: the shortcut route is not touched and keeps carrying
	// the flow while s1 registers and re-resolves.
	routesBefore, err := s1.node.Run(ctx, "ip route show proto 157")
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := s1.dir + "/dmvpnd.yaml"
	if err := l.WriteFile(ctx, cfgPath, []byte(strings.Replace(s1.config(), "holding_time: 300s", "holding_time: 240s", 1)), 0o600); err != nil {
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
	if nhs, err := s1.ctl(ctx, "show nhrp nhs --json"); err != nil || !strings.Contains(nhs, "responding") {
		t.Errorf("s1 NHS after the reload: %s %v", nhs, err)
	}

	out, _ := s1.ctl(ctx, "show dmvpn")
	t.Logf("s1 show dmvpn:\n%s", out)
	out, _ = hub.ctl(ctx, "show dmvpn")
	t.Logf("hub show dmvpn:\n%s", out)
}
