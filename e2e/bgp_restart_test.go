package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/dmvpnd/dmvpnd/controller/api"
	"github.com/dmvpnd/dmvpnd/e2e/lab"
)

// TestBGPGracefulRestart: BGP graceful restart (bgp.graceful_restart on
// every node) carries Phase 1 traffic through a restart of the hub's
// dmvpnd, once a clean one (SIGTERM, as systemctl restart and package
// upgrades do: dmvpnd stops BGP gracefully) and once a kill -9, one after
// the other on one lab. Hub (summary mode, IPsec, so its tunnel-source
// binding is on) and two spokes; a ping from s1's LAN to s2's LAN through
// the hub runs while the hub's dmvpnd stops and starts again: no packet is
// lost, neither spoke's kernel ever drops its BGP route (`ip monitor route`
// sees no deletion of the summary), and the spokes' sessions with the hub
// are back within the restart time.
//
// Both restarts share the boot: a spoke whose sole NHS stops answering
// keeps the hub's binding (nhrp engine: nothing to fail over to), so a
// registration refresh that falls into the second restart no longer drops
// the hub's neighbour entry, which is what once made each restart need a
// lab of its own. Each subtest starts from the converged cloud: sessions
// re-established after the previous restart, the spokes' routes back to the
// summary alone and a LAN-to-LAN ping answered.
func TestBGPGracefulRestart(t *testing.T) {
	l, nodes := bgpLab(t, 2)
	hub, s1, s2 := nodes[0], nodes[1], nodes[2]
	spokes := nodes[1:]
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	const restartTime = 120 * time.Second
	setup := bgpWithIPsec(t, l, nodes, bgpSetup{hubMode: "summary", summaries: []netip.Prefix{bgpSummary},
		bgpExtra: fmt.Sprintf("  graceful_restart: {enabled: true, restart_time: %ds}\n", int(restartTime.Seconds()))})
	bgpStartAll(t, l, nodes, setup)
	onlySummary := []bgpRoute{bgpRt(bgpSummary.String(), hub.tunnel.String())}
	for _, stop := range []struct{ name, signal string }{{"sigterm", "TERM"}, {"kill-9", "KILL"}} {
		ok := t.Run(stop.name, func(t *testing.T) {
			for _, s := range spokes {
				if err := bgpWaitRoutes(ctx, s, onlySummary, false); err != nil {
					t.Fatalf("BGP convergence: %v", err)
				}
				if err := bgpWaitSA(ctx, s, hub); err != nil {
					t.Fatal(err)
				}
			}
			if err := scLANPing(ctx, s1, s2.lan.Addr(), 3); err != nil {
				t.Fatalf("LAN to LAN through the hub before the restart: %v", err)
			}
			bgpRestartHub(ctx, t, l, hub, spokes, setup, stop.name, stop.signal, restartTime, onlySummary)
		})
		if !ok {
			return // the cloud is in no known state for the next restart
		}
	}
}

// bgpRestartHub stops the hub's dmvpnd with signal while s1 pings s2's LAN
// through it, starts it again, and checks that nothing was lost or
// withdrawn (TestBGPGracefulRestart).
func bgpRestartHub(ctx context.Context, t *testing.T, l *lab.Lab, hub *dnode, spokes []*dnode, setup bgpSetup,
	name, signal string, restartTime time.Duration, onlySummary []bgpRoute) {
	t.Helper()
	s1, s2 := spokes[0], spokes[1]
	// Watch the spokes' routing tables from now on.
	mons := map[string]*lab.Proc{}
	for _, s := range spokes {
		p, err := s.node.Start(ctx, "ip-monitor-route-"+signal, "ip -4 monitor route")
		if err != nil {
			t.Fatal(err)
		}
		mons[s.name] = p
	}
	defer func() {
		for _, s := range spokes {
			_, _ = s.node.Run(ctx, fmt.Sprintf("kill %d", mons[s.name].PID))
		}
	}()
	// The ping runs from before the signal until 3 s (30 replies) after
	// both spokes' sessions are back, then is interrupted.
	ping, err := s1.node.Start(ctx, "ping-"+signal, fmt.Sprintf("ping -n -i 0.1 -W 2 -I %s %s", s1.lan.Addr(), s2.lan.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	waitReplies(ctx, t, l, ping, 20) // the ping is under way

	old := hub.proc
	if _, err := hub.node.Run(ctx, fmt.Sprintf("kill -%s %d", signal, old.PID)); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
	err = lab.WaitFor(wctx, 100*time.Millisecond, func(ctx context.Context) error {
		if old.Alive(ctx) {
			return fmt.Errorf("the hub's dmvpnd %d still runs after %s", old.PID, name)
		}
		return nil
	})
	wcancel()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("timing: %s: hub dmvpnd gone %v after the signal", name, bgpMS(time.Since(killed)))
	bgpStart(t, l, hub, setup)
	hub.waitReady(t, 90*time.Second)
	t.Logf("timing: %s: hub dmvpnd ready %v after the signal", name, bgpMS(time.Since(killed)))
	for _, s := range spokes {
		err := lab.WaitFor(ctx, 250*time.Millisecond, func(ctx context.Context) error {
			sum, err := ctlJSON[api.BGPSummary](ctx, s, "show bgp summary")
			if err != nil {
				return err
			}
			for _, n := range sum.Neighbors {
				if n.Address == hub.tunnel && n.State == "Established" && time.Since(n.Since) < time.Since(killed) {
					return nil
				}
			}
			return fmt.Errorf("%s: session with the hub not re-established: %+v", s.name, sum.Neighbors)
		})
		if err != nil {
			t.Fatal(err)
		}
		back := time.Since(killed)
		t.Logf("timing: %s: %s's session with the hub back %v after the signal", name, s.name, bgpMS(back))
		if back > restartTime {
			t.Errorf("%s: %s's session came back after %v, beyond the restart time %v", name, s.name, back, restartTime)
		}
	}

	waitReplies(ctx, t, l, ping, countReplies(t, ping)+30)
	res := stopPing(ctx, t, l, ping)
	if len(res.missing) > 0 || res.sent < 50 {
		t.Errorf("%s: ping s1 LAN -> s2 LAN through the hub's restart lost packets: missing icmp_seq %v of %d sent (log %s)", name, res.missing, res.sent, ping.Log)
	} else {
		t.Logf("%s: ping s1 LAN -> s2 LAN through the hub's restart: %d sent, %d answered", name, res.sent, len(res.replied))
	}
	for _, s := range spokes {
		if err := bgpWaitRoutes(ctx, s, onlySummary, false); err != nil {
			t.Errorf("%s: after the restart: %v", name, err)
		}
		b, err := os.ReadFile(mons[s.name].Log)
		if err != nil {
			t.Fatal(err)
		}
		for line := range strings.SplitSeq(string(b), "\n") {
			if strings.HasPrefix(line, "Deleted") && strings.Contains(line, bgpSummary.String()) {
				t.Errorf("%s: %s's kernel withdrew the BGP route during the hub's restart: %s", name, s.name, line)
			}
		}
		t.Logf("%s: %s: ip monitor route during the restart:\n%s", name, s.name, strings.TrimSpace(string(b)))
	}
}
