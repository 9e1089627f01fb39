package controller

import (
	"context"
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dmvpnd/dmvpnd/kernel"
	"github.com/dmvpnd/dmvpnd/kernel/kerneltest"
	"github.com/dmvpnd/dmvpnd/routing"
)

// sinkSpeaker is a BGP speaker fake that keeps the FIB sink the controller
// hands it, so the test can deliver best paths as GoBGP's watcher would.
type sinkSpeaker struct {
	prefixRecorder
	sink routing.RouteSink
}

// TestBGPRoutesReachTheKernel: BGP best paths become kernel routes (metric
// routing.DefaultRouteMetric via the tunnel), a withdrawal removes them, a
// shortcut for the same prefix is installed beside the BGP route with a
// lower metric (it wins), and the BGP route stays when the shortcut goes.
func TestBGPRoutesReachTheKernel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		netw := kerneltest.NewNetwork()
		hub := hubWithLANs(t, netw, "")
		sp := &sinkSpeaker{}
		s1 := start(t, netw, "s1", spokeYAML("198.51.100.2", "10.0.0.2/24", "198.51.100.1", "10.0.0.1")+
			"bgp: {enabled: true, asn: 65000, neighbors: [{address: 10.0.0.1}], prefixes: [192.168.1.0/24]}\n",
			lanRoutes("192.168.1.0/24", "192.168.2.0/24", "10.0.0.1"),
			func(d *Deps) {
				d.NewBGP = func(_ routing.Config, sink routing.RouteSink) (BGP, error) { sp.sink = sink; return sp, nil }
			})
		s2 := startSpoke(t, netw, 2, "")
		defer stopAll(t, s1, s2, hub)
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if sp.sink == nil {
			t.Fatal("the controller did not build its BGP speaker")
		}

		bgpRoute := routing.Route{Prefix: netip.MustParsePrefix("192.168.2.0/24"), Via: netip.MustParseAddr("10.0.0.1"), Metric: routing.DefaultRouteMetric}
		sp.sink.SetRoutes([]routing.Route{bgpRoute})
		time.Sleep(time.Second)
		synctest.Wait()
		if !s1.has("route 192.168.2.0/24 via 10.0.0.1", "metric 20") {
			t.Fatalf("s1: BGP route not in the kernel:\n%s", s1.kernel.Render())
		}

		// A Phase 3 shortcut for the same prefix goes in beside it with a
		// lower metric.
		hub.kernel.InjectHairpin(kernel.Hairpin{InIfindex: 1, Packet: ipv4Packet("192.168.1.10", "192.168.2.20")})
		deadline := time.Now().Add(30 * time.Second)
		for !s1.has("route 192.168.2.0/24 via 10.0.0.3", "metric 10") && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
		if !s1.has("route 192.168.2.0/24 via 10.0.0.3", "metric 10") || !s1.has("route 192.168.2.0/24 via 10.0.0.1", "metric 20") {
			t.Fatalf("s1: want the shortcut (metric 10) beside the BGP route (metric 20):\n%s", s1.kernel.Render())
		}
		if n, err := s1.ctl.ClearShortcuts(context.Background()); err != nil || n != 1 {
			t.Fatalf("ClearShortcuts = %d, %v", n, err)
		}
		synctest.Wait()
		if s1.has("route 192.168.2.0/24 via 10.0.0.3") || !s1.has("route 192.168.2.0/24 via 10.0.0.1", "metric 20") {
			t.Errorf("s1: after clearing the shortcut only the BGP route must remain:\n%s", s1.kernel.Render())
		}

		// Withdrawal: BGP delivers an empty best-path set.
		sp.sink.SetRoutes(nil)
		time.Sleep(time.Second)
		synctest.Wait()
		if s1.has("route 192.168.2.0/24") {
			t.Errorf("s1: withdrawn BGP route still in the kernel:\n%s", s1.kernel.Render())
		}
	})
}
