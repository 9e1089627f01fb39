package controller

import (
	"net/netip"
	"testing"
	"testing/synctest"

	"github.com/google/go-cmp/cmp"

	"github.com/dmvpnd/dmvpnd/controller/api"
	"github.com/dmvpnd/dmvpnd/ipsec/ipsectest"
	"github.com/dmvpnd/dmvpnd/kernel"
	"github.com/dmvpnd/dmvpnd/kernel/kerneltest"
)

// TestGuardFollowsIPsec: with IPsec the cleartext GRE guard is installed
// for the node's NBMA before the NHRP socket opens, its drops show in show
// counters and in metrics; without IPsec a previous run's guard is removed.
func TestGuardFollowsIPsec(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		netw := kerneltest.NewNetwork()
		guard := &kerneltest.Guard{}
		var atListen []string
		n := start(t, netw, "spoke", spokeYAML("198.51.100.2", "10.0.0.2/24", "198.51.100.1", "10.0.0.1"), nil,
			func(d *Deps) {
				d.Guard = guard
				d.IPsec = fakeIPsec{ipsectest.NewFake(nil)}
				listen := d.Listen
				d.Listen = func(ifindex int) (kernel.PacketConn, error) {
					atListen = guard.Calls()
					return listen(ifindex)
				}
			})
		synctest.Wait()
		if d := cmp.Diff([]string{"install 198.51.100.2"}, atListen); d != "" {
			t.Fatalf("guard calls when the NHRP socket opened (-want +got):\n%s", d)
		}
		guard.SetCounters(kernel.GuardCounters{InPackets: 7, InBytes: 700, OutPackets: 2, OutBytes: 200})
		wantCounted(t, n, api.Counters{"ipsec_gre_clear_in_dropped": 7, "ipsec_gre_clear_out_dropped": 2},
			"dmvpnd_ipsec_cleartext_gre_dropped_total", `
# HELP dmvpnd_ipsec_cleartext_gre_dropped_total GRE packets dropped because no IPsec SA protected them, by direction (in: arrived in clear; out: would have left in clear).
# TYPE dmvpnd_ipsec_cleartext_gre_dropped_total counter
dmvpnd_ipsec_cleartext_gre_dropped_total{direction="in"} 7
dmvpnd_ipsec_cleartext_gre_dropped_total{direction="out"} 2
`)
		n.stop(t)
		if ok, local := guard.Installed(); !ok || local != netip.MustParseAddr("198.51.100.2") {
			t.Errorf("after stop: installed %v for %s; the guard must stay while dmvpnd restarts", ok, local)
		}

		plain := start(t, netw, "plain", spokeYAML("198.51.100.3", "10.0.0.3/24", "198.51.100.1", "10.0.0.1"), nil,
			func(d *Deps) { d.Guard = guard })
		synctest.Wait()
		if ok, _ := guard.Installed(); ok {
			t.Errorf("a run without IPsec left the guard installed; calls %v", guard.Calls())
		}
		wantNotShown(t, plain, "ipsec_gre_clear_in_dropped", "ipsec_gre_clear_out_dropped") // no IPsec
		plain.stop(t)
	})
}
