package controller

import (
	"context"
	"net/netip"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/dmvpnd/dmvpnd/kernel"
	"github.com/dmvpnd/dmvpnd/kernel/kerneltest"
	"github.com/dmvpnd/dmvpnd/routing"
)

// withSink gives the node a BGP speaker and hands its FIB sink to *sink,
// so the test delivers best paths as GoBGP would.
func withSink(sink *routing.RouteSink) func(*Deps) {
	return func(d *Deps) {
		d.NewBGP = func(_ routing.Config, s routing.RouteSink) (BGP, error) { *sink = s; return &stubBGP{}, nil }
	}
}

// TestRefusedRouteRetriedWithBackoff: a route the kernel refuses does not
// keep the others out; it is counted once as refused while it keeps
// failing, retried with a growing delay (not per loop iteration), and
// installed once the kernel takes it.
func TestRefusedRouteRetriedWithBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		netw := kerneltest.NewNetwork()
		hub := start(t, netw, "hub", hubYAML("198.51.100.1", "10.0.0.1/24"), nil)
		var sink routing.RouteSink
		s1 := start(t, netw, "s1", spokeYAML("198.51.100.2", "10.0.0.2/24", "198.51.100.1", "10.0.0.1")+spokeBGP, nil, withSink(&sink))
		defer stopAll(t, s1, hub)
		time.Sleep(time.Second)
		synctest.Wait()

		bad := netip.MustParsePrefix("192.168.2.0/24")
		var tries atomic.Int32
		s1.kernel.RefuseRoutes(func(r kernel.Route) error {
			if r.Dst == bad {
				tries.Add(1)
				return errInjected
			}
			return nil
		})
		via := netip.MustParseAddr("10.0.0.1")
		sink.SetRoutes([]routing.Route{
			{Prefix: bad, Via: via, Metric: routing.DefaultRouteMetric},
			{Prefix: netip.MustParsePrefix("192.168.3.0/24"), Via: via, Metric: routing.DefaultRouteMetric},
		})
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if !s1.has("route 192.168.3.0/24 via 10.0.0.1") || s1.has("route 192.168.2.0/24") {
			t.Errorf("want the accepted route in and the refused one out:\n%s", s1.kernel.Render())
		}
		attempts := int(tries.Load())
		// Tried at once, then after 0.5, 1, 2 and 4 s: five attempts in
		// the first 10 s at most.
		if attempts < 3 || attempts > 5 {
			t.Errorf("refused route tried %d times in 10 s; want retries with backoff (3 to 5)", attempts)
		}
		got, err := s1.ctl.Counters(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if got["routes_refused"] != 1 || got["reconcile_errors_routes"] != uint64(attempts) {
			t.Errorf("counters routes_refused %d, reconcile_errors_routes %d; want 1 and %d", got["routes_refused"],
				got["reconcile_errors_routes"], attempts)
		}
		if v := metricValue(t, s1.m.ReconcileErrors.WithLabelValues("kernel")); v != float64(attempts) {
			t.Errorf("reconcile errors{kernel} = %v, want %d", v, attempts)
		}

		s1.kernel.RefuseRoutes(nil)
		time.Sleep(time.Minute)
		synctest.Wait()
		if !s1.has("route 192.168.2.0/24 via 10.0.0.1") {
			t.Errorf("route not installed once the kernel takes it:\n%s", s1.kernel.Render())
		}
	})
}

// TestAdoptedBGPRouteHandedOver: a BGP route a previous run left stays in
// the kernel untouched until BGP delivers it again, and is then owned
// (withdrawn with BGP's); without BGP it is removed at once.
func TestAdoptedBGPRouteHandedOver(t *testing.T) {
	route := kernel.Route{Dst: netip.MustParsePrefix("192.168.2.0/24"), Via: netip.MustParseAddr("10.0.0.1"), Metric: routing.DefaultRouteMetric}
	leftover := func(t *testing.T, yaml string) *kerneltest.Fake {
		k := kerneltest.New()
		if _, err := k.EnsureTunnel(tunnelConfig(parseConfig(t, yaml))); err != nil {
			t.Fatal(err)
		}
		if err := k.SetRoutes([]kernel.Route{route}); err != nil {
			t.Fatal(err)
		}
		return k
	}
	spoke := spokeYAML("198.51.100.2", "10.0.0.2/24", "198.51.100.1", "10.0.0.1")
	const del = "delete route 192.168.2.0/24 via 10.0.0.1 metric 20"

	t.Run("bgp on", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			netw := kerneltest.NewNetwork()
			hub := start(t, netw, "hub", hubYAML("198.51.100.1", "10.0.0.1/24"), nil)
			k := leftover(t, spoke+spokeBGP)
			base := len(k.Ops())
			var sink routing.RouteSink
			var open atomic.Bool
			s1 := startOn(t, netw, "s1", spoke+spokeBGP, nil, k, &open, withSink(&sink))
			defer stopAll(t, s1, hub)
			time.Sleep(30 * time.Second)
			synctest.Wait()
			if got := opsSince(k, base, "192.168.2.0/24"); len(got) != 0 || !s1.has("route 192.168.2.0/24") {
				t.Fatalf("adopted route touched before BGP re-learnt it: %q\n%s", got, k.Render())
			}
			sink.SetRoutes([]routing.Route{{Prefix: route.Dst, Via: route.Via, Metric: route.Metric}})
			time.Sleep(time.Second)
			synctest.Wait()
			if got := opsSince(k, base, "192.168.2.0/24"); len(got) != 0 {
				t.Errorf("re-learnt route rewritten: %q", got)
			}
			// Owned now: it goes with BGP's withdrawal, before the grace
			// period would have removed it.
			sink.SetRoutes(nil)
			time.Sleep(time.Second)
			synctest.Wait()
			if d := cmp.Diff([]string{del}, opsSince(k, base, "192.168.2.0/24")); d != "" {
				t.Errorf("operations after the withdrawal (-want +got):\n%s", d)
			}
		})
	})
	t.Run("bgp off", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			netw := kerneltest.NewNetwork()
			k := leftover(t, spoke)
			base := len(k.Ops())
			var open atomic.Bool
			s1 := startOn(t, netw, "s1", spoke, nil, k, &open)
			defer stopAll(t, s1)
			synctest.Wait()
			if d := cmp.Diff([]string{del}, opsSince(k, base, "192.168.2.0/24")); d != "" {
				t.Errorf("operations on a BGP route left while BGP is off (-want +got):\n%s", d)
			}
		})
	})
}

// TestClearCache: clear nhrp cache drops the entry a resolution learnt and
// its shortcut route; the spoke's NHS entry stays.
func TestClearCache(t *testing.T) {
	testPhase3(t, func(t *testing.T, r phase3Run) {
		ctx := context.Background()
		n, err := r.s1.ctl.ClearCache(ctx)
		if err != nil || n < 1 {
			t.Fatalf("ClearCache = %d, %v; want the resolved entries cleared", n, err)
		}
		synctest.Wait()
		if r.s1.has("route 192.168.2.0/24") {
			t.Errorf("shortcut route kept after clearing the cache:\n%s", r.s1.kernel.Render())
		}
		cache, err := r.s1.ctl.Cache(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var left []string
		for _, e := range cache {
			left = append(left, e.Tunnel.String()+" "+string(e.Type))
		}
		if d := cmp.Diff([]string{"10.0.0.1 nhs"}, left); d != "" {
			t.Errorf("cache after clear (-want +got):\n%s", d)
		}
	})
}
