package controller

import (
	"context"
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/dmvpnd/dmvpnd/kernel/kerneltest"
	"github.com/dmvpnd/dmvpnd/routing"
)

var addrCmp = cmp.Options{cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
	cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })}

// TestBGPLearnsNHRP: a hub's BGP speaker is told which tunnel addresses
// are registered (for bgp.dynamic.require_registration) and which NBMA
// addresses NHRP learnt (no BGP route may cover them), once per interval
// at most, and again when a spoke goes away.
func TestBGPLearnsNHRP(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		netw := kerneltest.NewNetwork()
		rec := &prefixRecorder{}
		hub := start(t, netw, "hub", hubYAML("198.51.100.1", "10.0.0.1/24")+
			"bgp: {enabled: true, asn: 65000, dynamic: {prefix: 10.0.0.0/24}}\n", nil,
			func(d *Deps) { d.NewBGP = func(routing.Config, routing.RouteSink) (BGP, error) { return rec, nil } })
		s1 := start(t, netw, "s1", spokeYAML("198.51.100.2", "10.0.0.2/24", "198.51.100.1", "10.0.0.1"), nil)
		s2 := start(t, netw, "s2", spokeYAML("198.51.100.3", "10.0.0.3/24", "198.51.100.1", "10.0.0.1"), nil)
		defer stopAll(t, s1, s2, hub)
		time.Sleep(5 * time.Second)
		synctest.Wait()

		a, p := netip.MustParseAddr, netip.MustParsePrefix
		last := func() ([]netip.Addr, []netip.Prefix, int) {
			rec.mu.Lock()
			defer rec.mu.Unlock()
			if len(rec.registered) == 0 || len(rec.protected) == 0 {
				return nil, nil, 0
			}
			return rec.registered[len(rec.registered)-1], rec.protected[len(rec.protected)-1], len(rec.protected)
		}
		reg, prot, n := last()
		if d := cmp.Diff([]netip.Addr{a("10.0.0.2"), a("10.0.0.3")}, reg, addrCmp); d != "" {
			t.Errorf("registered (-want +got):\n%s", d)
		}
		if d := cmp.Diff([]netip.Prefix{p("198.51.100.2/32"), p("198.51.100.3/32")}, prot, addrCmp); d != "" {
			t.Errorf("protected NBMAs (-want +got):\n%s", d)
		}
		if n > 5 {
			t.Errorf("%d updates in 5 s, want at most one per %v", n, bgpViewInterval)
		}

		// Nothing changes: no update.
		time.Sleep(3 * bgpViewInterval)
		synctest.Wait()
		if _, _, again := last(); again != n {
			t.Errorf("%d updates while nothing changed", again-n)
		}

		// s2's registration goes (cleared by the operator; s2 refreshes
		// only after holding/3).
		if err := hub.ctl.run(context.Background(), func() {
			if !hub.ctl.eng.ClearRegistration(a("10.0.0.3")) {
				t.Error("no registration of 10.0.0.3 to clear")
			}
		}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * bgpViewInterval)
		synctest.Wait()
		reg, prot, _ = last()
		if d := cmp.Diff([]netip.Addr{a("10.0.0.2")}, reg, addrCmp); d != "" {
			t.Errorf("registered after s2 left (-want +got):\n%s", d)
		}
		if d := cmp.Diff([]netip.Prefix{p("198.51.100.2/32")}, prot, addrCmp); d != "" {
			t.Errorf("protected NBMAs after s2 left (-want +got):\n%s", d)
		}
	})
}
