package controller

import (
	"net/netip"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/dmvpnd/dmvpnd/controller/api"
	"github.com/dmvpnd/dmvpnd/ipsec"
	"github.com/dmvpnd/dmvpnd/ipsec/ipsectest"
	"github.com/dmvpnd/dmvpnd/kernel"
	"github.com/dmvpnd/dmvpnd/kernel/kerneltest"
)

const ipsecYAML = "ipsec: {enabled: true, auth: {method: psk, psk: correct-horse-battery-staple}}\n"

// respondedSA is the SA a spoke that initiated to the hub has on the
// hub's responder connection (transport mode).
func respondedSA(id string, spoke netip.Addr) ipsec.SAInfo {
	return ipsec.SAInfo{
		Conn: "dmvpn-responder", UniqueID: id, State: "ESTABLISHED",
		Remote: netip.AddrPortFrom(spoke, 500), RemoteID: spoke.String(),
		Children: []ipsec.ChildInfo{{Name: "gre", State: "INSTALLED", Mode: "TRANSPORT"}},
	}
}

// TestTunnelSourceBinding: a hub with IPsec installs the guard with the
// tunnel-source binding (tunnel prefix and GRE key) and binds each
// registered spoke's tunnel address to its NBMA; a spoke (auto: off)
// installs the guard alone. The drops show in show counters and metrics.
func TestTunnelSourceBinding(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		netw := kerneltest.NewNetwork()
		hubNBMA := netip.MustParseAddr("198.51.100.1")
		hubIPsec := ipsectest.NewFake(nil)
		hubGuard := &kerneltest.Guard{}
		var spokes []*node
		var spokeGuards []*kerneltest.Guard
		for i, s := range []struct{ nbma, addr string }{{"198.51.100.2", "10.0.0.2/24"}, {"198.51.100.3", "10.0.0.3/24"}} {
			nbma := netip.MustParseAddr(s.nbma)
			hubIPsec.AddUnattributed(respondedSA(s.nbma, nbma))
			f := ipsectest.NewFake(nil)
			g := &kerneltest.Guard{}
			spokeGuards = append(spokeGuards, g)
			n := start(t, netw, "spoke"+s.nbma, spokeYAML(s.nbma, s.addr, hubNBMA.String(), "10.0.0.1")+ipsecYAML, nil,
				func(d *Deps) { d.IPsec, d.Guard = fakeIPsec{f}, g })
			synctest.Wait()
			if !f.SetStatus(hubNBMA.String(), ipsec.StatusUp, netip.AddrPortFrom(hubNBMA, 500), "") {
				t.Fatalf("spoke %d does not want the hub: %s", i, f.Text())
			}
			spokes = append(spokes, n)
		}
		hub := start(t, netw, "hub", hubYAML(hubNBMA.String(), "10.0.0.1/24")+ipsecYAML, nil,
			func(d *Deps) { d.IPsec, d.Guard = fakeIPsec{hubIPsec}, hubGuard })
		defer func() { stopAll(t, append(spokes, hub)...) }()
		time.Sleep(5 * time.Second)
		synctest.Wait()

		if d := cmp.Diff([]string{"install 198.51.100.1 bind 10.0.0.0/24 key 42"}, hubGuard.Calls()); d != "" {
			t.Errorf("hub guard calls (-want +got):\n%s", d)
		}
		for _, g := range spokeGuards {
			if calls := g.Calls(); len(calls) != 1 || strings.Contains(calls[0], "bind") {
				t.Errorf("spoke guard calls %v, want an install without binding", calls)
			}
		}
		got, sets := hubGuard.BoundText()
		want := "198.51.100.2 . 10.0.0.2\n198.51.100.3 . 10.0.0.3\n"
		if got != want {
			t.Fatalf("hub bound sources:\n%s\nwant:\n%s", got, want)
		}

		// Nothing changes: the resync pushes the same set, no more.
		time.Sleep(resyncInterval)
		synctest.Wait()
		if again, n := hubGuard.BoundText(); again != want || n <= sets {
			t.Errorf("after a resync: %d pushes (before %d) of\n%s", n, sets, again)
		}

		hubGuard.SetCounters(kernel.GuardCounters{UnboundPackets: 5})
		wantCounted(t, hub, api.Counters{"ipsec_tunnel_src_unbound_dropped": 5}, "dmvpnd_ipsec_tunnel_source_unbound_dropped_total", `
# HELP dmvpnd_ipsec_tunnel_source_unbound_dropped_total GRE packets dropped because their inner source, a tunnel address, is not bound to the NBMA (and SA) they came from (ipsec.tunnel_source_binding).
# TYPE dmvpnd_ipsec_tunnel_source_unbound_dropped_total counter
dmvpnd_ipsec_tunnel_source_unbound_dropped_total 5
`)
		// The second spoke goes away: its binding ends with its
		// registration (holding time), the first spoke's stays.
		spokes[1].stop(t)
		time.Sleep(601 * time.Second)
		synctest.Wait()
		if got, _ := hubGuard.BoundText(); got != "198.51.100.2 . 10.0.0.2\n" {
			t.Errorf("hub bound sources after the second spoke left:\n%s", got)
		}
		spokes = spokes[:1]

		wantNotShown(t, spokes[0], "ipsec_tunnel_src_unbound_dropped") // a spoke without the binding
	})
}
