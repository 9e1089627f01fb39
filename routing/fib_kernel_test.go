package routing_test

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dmvpnd/dmvpnd/kernel"
	"github.com/dmvpnd/dmvpnd/kernel/kerneltest"
	"github.com/dmvpnd/dmvpnd/routing"
	"github.com/google/go-cmp/cmp"
)

// kernelSink adapts the FIB to kernel.Dataplane the way the controller
// does: BGP routes and NHRP shortcut routes together are the set of routes
// dmvpnd owns. Shortcuts use metric 10, below routing.DefaultRouteMetric.
type kernelSink struct {
	dp        kernel.Dataplane
	shortcuts []kernel.Route
}

func (k *kernelSink) SetRoutes(_ context.Context, rs []routing.Route) error {
	out := slices.Clone(k.shortcuts)
	for _, r := range rs {
		out = append(out, kernel.Route{Dst: r.Prefix, Via: r.Via, Metric: r.Metric})
	}
	return k.dp.SetRoutes(out)
}

func TestFIBAgainstKernelFake(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fake := kerneltest.New()
		if _, err := fake.EnsureTunnel(kernel.TunnelConfig{
			Name: "gre1", Local: addr("198.51.100.11"), Key: 42, TTL: 64, Address: pfx("10.0.0.11/32"),
		}); err != nil {
			t.Fatal(err)
		}
		fake.AddForeignRoute("default via 198.51.100.254 dev eth0")
		sink := &kernelSink{dp: fake, shortcuts: []kernel.Route{
			// An NHRP shortcut for spoke 13's LAN, learnt by resolution.
			{Dst: pfx("192.168.13.0/24"), Via: addr("10.0.0.13"), Metric: 10},
		}}
		f := routing.NewFIB(sink, routing.FIBOptions{MinBackoff: time.Second})
		f.SetOwn([]netip.Prefix{pfx("192.168.11.0/24")}, []netip.Addr{addr("10.0.0.11")})
		defer runFIB(t, f)()

		// The kernel refuses the first attempt; the FIB retries.
		fake.FailNext("SetRoutes", errors.New("netlink: device busy"))
		f.Apply([]routing.PathUpdate{
			upd("192.168.0.0/16", "10.0.0.1"),   // Phase 3 summary from the hub
			upd("192.168.12.0/24", "10.0.0.12"), // Phase 2: next hop is spoke 12
			upd("192.168.13.0/24", "10.0.0.13"), // same length as the shortcut
			upd("192.168.11.0/24", "10.0.0.1"),  // own LAN: never installed
		})
		time.Sleep(5 * time.Second)
		synctest.Wait()
		want := []string{
			"route 192.168.0.0/16 via 10.0.0.1 dev gre1 proto 157 metric 20",
			"route 192.168.12.0/24 via 10.0.0.12 dev gre1 proto 157 metric 20",
			// Shortcut and BGP route side by side: the kernel prefers metric 10.
			"route 192.168.13.0/24 via 10.0.0.13 dev gre1 proto 157 metric 10",
			"route 192.168.13.0/24 via 10.0.0.13 dev gre1 proto 157 metric 20",
			"route default via 198.51.100.254 dev eth0",
		}
		if diff := cmp.Diff(want, routeLines(fake)); diff != "" {
			t.Errorf("kernel state (-want +got):\n%s", diff)
		}
		if st := f.Stats(); st.Failures != 1 || st.Syncs != 1 {
			t.Errorf("stats %+v, want 1 failure then 1 sync", st)
		}

		// Withdrawals remove exactly the BGP routes; shortcut and foreign stay.
		f.Apply([]routing.PathUpdate{wd("192.168.12.0/24"), wd("192.168.13.0/24"), wd("192.168.0.0/16")})
		time.Sleep(time.Second)
		synctest.Wait()
		want = []string{
			"route 192.168.13.0/24 via 10.0.0.13 dev gre1 proto 157 metric 10",
			"route default via 198.51.100.254 dev eth0",
		}
		if diff := cmp.Diff(want, routeLines(fake)); diff != "" {
			t.Errorf("kernel state after withdrawal (-want +got):\n%s", diff)
		}
	})
}

// routeLines is the fake's state without the tunnel line (its ifindex is
// the fake's business).
func routeLines(f *kerneltest.Fake) []string {
	var out []string
	for _, l := range f.Lines() {
		if strings.HasPrefix(l, "route ") {
			out = append(out, l)
		}
	}
	return out
}
