package controller

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/dmvpnd/dmvpnd/kernel/kerneltest"
	"github.com/dmvpnd/dmvpnd/routing"
	"github.com/dmvpnd/dmvpnd/routing/routingtest"
)

// TestStopUsesGracefulRestart: when Run ends (SIGTERM), the controller
// stops its BGP speaker gracefully when bgp.graceful_restart is on, and
// with Cease otherwise.
func TestStopUsesGracefulRestart(t *testing.T) {
	for _, tc := range []struct {
		gr   bool
		want []string
	}{{true, []string{"graceful"}}, {false, []string{"stop"}}} {
		t.Run(fmt.Sprintf("graceful_restart=%v", tc.gr), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				rec := &prefixRecorder{}
				yaml := hubYAML("198.51.100.1", "10.0.0.1/24") +
					fmt.Sprintf("bgp: {enabled: true, asn: 65000, graceful_restart: {enabled: %v}}\n", tc.gr)
				n := start(t, kerneltest.NewNetwork(), "hub", yaml, nil,
					func(d *Deps) { d.NewBGP = func(routing.Config, routing.RouteSink) (BGP, error) { return rec, nil } })
				synctest.Wait()
				n.stop(t)
				if d := cmp.Diff(tc.want, rec.stops); d != "" {
					t.Errorf("BGP stop calls (-want +got):\n%s", d)
				}
			})
		})
	}
}

// TestStopKeepsRoutesOnPeers runs a hub controller with the real GoBGP
// speaker cmd/dmvpnd builds, and a spoke speaker peering with it over
// loopback. Stopping the controller (what SIGTERM does) with
// bgp.graceful_restart leaves the hub's route on the spoke as stale, never
// withdrawn from its FIB; without graceful restart the spoke withdraws it
// at once.
func TestStopKeepsRoutesOnPeers(t *testing.T) {
	if raceEnabled && os.Getenv("DMVPND_GOBGP_RACE") != "1" {
		t.Skip("GoBGP v3.37.0 has data races of its own with several servers per process; set DMVPND_GOBGP_RACE=1 to run")
	}
	hubAddr, spokeAddr := netip.MustParseAddr("127.0.3.1"), netip.MustParseAddr("127.0.3.2")
	hubLAN := netip.MustParsePrefix("192.168.100.0/24")
	for _, gr := range []bool{true, false} {
		t.Run(fmt.Sprintf("graceful_restart=%v", gr), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
			defer cancel()
			l, err := net.Listen("tcp", netip.AddrPortFrom(hubAddr, 0).String())
			if err != nil {
				t.Fatal(err)
			}
			port := l.Addr().(*net.TCPAddr).Port
			l.Close()
			yaml := fmt.Sprintf(`
tunnel: {name: gre1, key: 42, local_nbma: 198.51.100.1, address: %s/24}
nhrp: {role: hub, network_id: 1, holding_time: 600s}
bgp:
  enabled: true
  asn: 65000
  listen: %s
  grpc_listen: "off"
  prefixes: [%s]
  graceful_restart: {enabled: %v}
`, hubAddr, netip.AddrPortFrom(hubAddr, uint16(port)), hubLAN, gr)
			hub := start(t, kerneltest.NewNetwork(), "hub", yaml, nil, func(d *Deps) {
				d.NewBGP = func(_ routing.Config, sink routing.RouteSink) (BGP, error) {
					rc, err := routingConfig(parseConfig(t, yaml))
					if err != nil {
						return nil, err
					}
					return routing.NewSpeaker(rc, routing.WithRouteSink(sink))
				}
			})
			stopped := false
			defer func() {
				if !stopped {
					hub.stop(t)
				}
			}()

			sink := routingtest.NewSink()
			sc := routing.Config{
				ASN: 65000, RouterID: spokeAddr, ListenPort: -1, Role: routing.RoleSpoke,
				Tunnel:   netip.PrefixFrom(hubAddr, 24).Masked(),
				Import:   routing.ImportConfig{Accept: []routing.PrefixRange{{Prefix: netip.MustParsePrefix("192.168.0.0/16"), LE: 24}}},
				Spoke:    routing.SpokeConfig{Hubs: []routing.Neighbor{{Address: hubAddr, Port: uint16(port), PeerAS: 65000, LocalAddress: spokeAddr}}},
				HoldTime: 9 * time.Second, KeepaliveInterval: 3 * time.Second, ConnectRetry: time.Second,
				GracefulRestart: routing.GracefulRestart{Enabled: true, RestartTime: 120 * time.Second, StaleTime: 120 * time.Second},
			}
			spoke, err := routing.NewSpeaker(sc, routing.WithRouteSink(sink))
			if err != nil {
				t.Fatal(err)
			}
			if err := spoke.Start(ctx); err != nil {
				t.Fatal(err)
			}
			defer spoke.Stop(context.Background())

			learnt := routingtest.Render([]routing.Route{{Prefix: hubLAN, Via: hubAddr, Metric: routing.DefaultRouteMetric}})
			if err := sink.WaitText(ctx, learnt); err != nil {
				t.Fatalf("spoke never learnt the hub's route: %v", err)
			}
			installed := len(sink.History())

			hub.stop(t) // Run returns as on SIGTERM
			stopped = true
			if !gr {
				if err := sink.WaitText(ctx, ""); err != nil {
					t.Fatalf("without graceful restart the spoke kept the route: %v", err)
				}
				return
			}
			// The session goes down with the administrative reset, the
			// spoke keeps the hub's path (Adj-RIB-In, stale) and its FIB.
			var down routing.NeighborSummary
			if err := waitFor(ctx, func() (bool, error) {
				sum, err := spoke.Summary(ctx)
				if err != nil || len(sum) != 1 {
					return false, err
				}
				down = sum[0]
				return down.State != routing.StateEstablished && down.LastDownReason != "", nil
			}); err != nil {
				t.Fatalf("the spoke never saw the session go down: %v", err)
			}
			<-time.After(2 * time.Second) // a window with the hub gone, not a wait for state
			sum, err := spoke.Summary(ctx)
			if err != nil || len(sum) != 1 || sum[0].PrefixesReceived != 1 {
				t.Errorf("spoke's view of the stopped hub: %+v (%v), want its path kept; down: %q", sum, err, down.LastDownReason)
			}
			if got := sink.History()[installed-1:]; len(got) != 1 || strings.TrimSpace(got[0]) != strings.TrimSpace(learnt) {
				t.Errorf("spoke FIB since the route was learnt: %q, want it unchanged", got)
			}
		})
	}
}

// waitFor polls cond until it holds or ctx ends.
func waitFor(ctx context.Context, cond func() (bool, error)) error {
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
