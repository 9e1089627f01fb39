package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"
)

// TestDMVPNRedundancy is issue 9 scenario 5: two hubs, spokes registered
// with both at once (dual-hub DMVPN: the engine keeps every configured NHS
// active, MaxActiveNHS 0), hub1 preferred (priority 0) over hub2 (10).
//
// Routing is static: each spoke sends the other LANs over a weighted
// multipath route (hub1 weight 255, hub2 weight 1) with
// fib_multipath_use_neigh, so the kernel skips a hub whose neighbor entry
// is gone. That is what dmvpnd does when an NHS stops answering
// registrations: it marks the NHS down and removes its neighbor entry.
// The spokes' holding time is 30 s, their registration interval 400 ms
// (nhrp.registration_interval: a registration every 400 ms, resent every
// 400 ms while unanswered, an NHS declared down after 3 unanswered tries),
// which bounds the loss window to about 1.6 s: the test asserts 2 s
// (issue 21's failover target).
//
// With real packets it checks: LAN-to-LAN traffic goes through hub1; a
// continuous ping (100 ms) survives hub1's failure (dmvpnd stopped and
// gre1 down) with a bounded loss window and then flows through hub2; the
// spokes' NHS views show hub1 down and hub2 responding; after hub1
// restarts the spokes register with it again and traffic returns to it.
// The spokes' registration interval in TestDMVPNRedundancy, and the
// failover loss window it must keep to.
const (
	failoverInterval = 400 * time.Millisecond
	failoverBound    = 2 * time.Second
)

func TestDMVPNRedundancy(t *testing.T) {
	l, n := scLab(t,
		scSpec{name: "hub1", nbma: "198.51.100.1", tunnel: "10.0.0.1", hub: true},
		scSpec{name: "hub2", nbma: "198.51.100.254", tunnel: "10.0.0.254", hub: true},
		scSpec{name: "s1", nbma: "198.51.100.2", tunnel: "10.0.0.2", lan: "10.1.1.1/24"},
		scSpec{name: "s2", nbma: "198.51.100.3", tunnel: "10.0.0.3", lan: "10.1.2.1/24"},
	)
	hub1, hub2, s1, s2 := n["hub1"], n["hub2"], n["s1"], n["s2"]
	spokes := []*dnode{s1, s2}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()

	// No redirect and no shortcuts: spoke-to-spoke traffic must keep
	// crossing a hub, which is what this scenario exercises.
	hubCfg := scHubNHRP("30s", false)
	spokeCfg := scSpokeNHRP("30s", false, "", scNHS{hub1, 0}, scNHS{hub2, 10}) + "  registration_interval: " + failoverInterval.String() + "\n"
	t0 := time.Now()
	for _, h := range []*dnode{hub1, hub2} {
		scStart(t, l, h, scConfig(h, hubCfg))
	}
	for _, s := range spokes {
		scStart(t, l, s, scConfig(s, spokeCfg))
	}
	both := map[netip.Addr]bool{hub1.nbma: true, hub2.nbma: true}
	for _, s := range spokes {
		if _, err := scWaitNHS(ctx, s, 90*time.Second, both); err != nil {
			t.Fatalf("spokes must register with both hubs: %v", err)
		}
	}
	t.Logf("timing: registration with both hubs after start %v", scMS(time.Since(t0)))
	regs := map[netip.Addr]netip.Addr{s1.tunnel: s1.nbma, s2.tunnel: s2.nbma}
	for _, h := range []*dnode{hub1, hub2} {
		if _, err := scWaitPeers(ctx, h, 30*time.Second, regs); err != nil {
			t.Fatalf("hub show dmvpn: %v", err)
		}
	}

	hubRoutes := func(h *dnode) {
		for _, s := range spokes {
			h.node.MustRun(fmt.Sprintf("ip route replace %s via %s dev gre1", s.lan.Masked(), s.tunnel))
		}
	}
	hubRoutes(hub1)
	hubRoutes(hub2)
	for _, s := range spokes {
		s.node.MustRun("sysctl -qw net.ipv4.fib_multipath_use_neigh=1")
		s.node.MustRun(fmt.Sprintf("ip route replace 10.1.0.0/16 nexthop via %s dev gre1 weight 255 nexthop via %s dev gre1 weight 1",
			hub1.tunnel, hub2.tunnel))
	}

	// Steady state: LAN to LAN through the preferred hub.
	relayed := func(h *dnode, count int) (int, error) { return hubRelayed(ctx, h, s1, s2, count) }
	got, err := relayed(hub1, 20)
	if err != nil {
		t.Fatalf("LAN to LAN with both hubs up: %v", err)
	}
	if got < 20 {
		t.Fatalf("hub1 gre1 received %d packets during 20 LAN pings, want >= 20: traffic does not use the preferred hub", got)
	}

	// Continuous ping across hub1's failure.
	pinger, err := scStartPinger(ctx, s1, "ping-failover", s2.lan.Addr())
	if err != nil {
		t.Fatal(err)
	}
	if err := pinger.waitReplies(ctx, 30*time.Second, 0, 20); err != nil {
		t.Fatalf("continuous ping before the failure: %v", err)
	}
	// The dataplane fails first (gre1 down: hub1 neither forwards nor
	// answers from then on), then dmvpnd stops: a hub whose dmvpnd alone
	// stops keeps forwarding, which would hide the detection time.
	tFail := time.Now()
	hub1.node.MustRun("ip link set dev gre1 down")
	scStop(t, hub1)
	t.Logf("hub1 down (gre1 down, dmvpnd stopped) at icmp_seq %d", pinger.lastSeq())

	// Both spokes must notice and keep hub2.
	only2 := map[netip.Addr]bool{hub1.nbma: false, hub2.nbma: true}
	for _, s := range spokes {
		v, err := scWaitNHS(ctx, s, 60*time.Second, only2)
		if err != nil {
			t.Fatalf("after hub1 failed: %v", err)
		}
		t.Logf("timing: %s declared hub1 down %v after the failure: %s", s.name, scMS(time.Since(tFail)), scNHSStates(v))
	}
	if err := pinger.waitReplies(ctx, 60*time.Second, pinger.lastSeq(), 50); err != nil {
		t.Fatalf("traffic does not flow through hub2 after hub1 failed: %v", err)
	}
	if err := pinger.stop(ctx); err != nil {
		t.Fatal(err)
	}
	loss, err := pinger.loss()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("timing: hub failover loss window %v (%s)", scMS(loss.window), loss)
	// Detection takes at most one interval to the next registration plus
	// three unanswered ones (4 x 400 ms); then the neighbor entry goes and
	// the kernel's multipath route skips hub1.
	if loss.window > failoverBound {
		t.Errorf("hub failover lost traffic for %v, want at most %v (%s)", scMS(loss.window), failoverBound, loss)
	}
	if _, err := scWaitPeers(ctx, hub2, 10*time.Second, regs); err != nil {
		t.Errorf("hub2 lost registrations while hub1 was down: %v", err)
	}
	got, err = relayed(hub2, 20)
	if err != nil {
		t.Fatalf("LAN to LAN with hub1 down: %v", err)
	}
	if got < 20 {
		t.Errorf("hub2 gre1 received %d packets during 20 LAN pings with hub1 down, want >= 20", got)
	}

	// hub1 returns: the spokes register again (their retries back off to
	// at most 64 s) and traffic returns to it.
	pinger, err = scStartPinger(ctx, s1, "ping-failback", s2.lan.Addr())
	if err != nil {
		t.Fatal(err)
	}
	if err := pinger.waitReplies(ctx, 30*time.Second, 0, 20); err != nil {
		t.Fatalf("continuous ping before hub1 returns: %v", err)
	}
	tBack := time.Now()
	hub1.node.MustRun("ip link set dev gre1 up")
	hubRoutes(hub1)
	scStart(t, l, hub1, scConfig(hub1, hubCfg))
	for _, s := range spokes {
		v, err := scWaitNHS(ctx, s, 100*time.Second, both)
		if err != nil {
			t.Fatalf("after hub1 restarted: %v", err)
		}
		t.Logf("timing: %s registered with hub1 again %v after its restart: %s", s.name, scMS(time.Since(tBack)), scNHSStates(v))
	}
	if _, err := scWaitPeers(ctx, hub1, 30*time.Second, regs); err != nil {
		t.Fatalf("hub1 show dmvpn after restart: %v", err)
	}
	if err := pinger.waitReplies(ctx, 30*time.Second, pinger.lastSeq(), 30); err != nil {
		t.Fatalf("traffic after hub1 returned: %v", err)
	}
	if err := pinger.stop(ctx); err != nil {
		t.Fatal(err)
	}
	if loss, err = pinger.loss(); err != nil {
		t.Fatal(err)
	}
	t.Logf("timing: failback to hub1 loss window %v (%s)", scMS(loss.window), loss)
	got, err = relayed(hub1, 20)
	if err != nil {
		t.Fatalf("LAN to LAN after hub1 returned: %v", err)
	}
	if got < 20 {
		t.Errorf("hub1 gre1 received %d packets during 20 LAN pings after its return, want >= 20", got)
	}
	for _, d := range []*dnode{s1, hub1, hub2} {
		out, _ := d.ctl(ctx, "show dmvpn")
		t.Logf("%s show dmvpn:\n%s", d.name, out)
	}
}
