package controller

import (
	"context"
	"testing"
	"testing/synctest"

	"github.com/dmvpnd/dmvpnd/controller/api"
	"github.com/dmvpnd/dmvpnd/ipsec/ipsectest"
	"github.com/dmvpnd/dmvpnd/kernel/kerneltest"
)

// TestIPsecRefusalsCounted: the peer connections charon refused show in
// show counters and in metrics.
func TestIPsecRefusalsCounted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		netw := kerneltest.NewNetwork()
		fake := ipsectest.NewFake(nil)
		n := start(t, netw, "spoke", spokeYAML("198.51.100.2", "10.0.0.2/24", "198.51.100.1", "10.0.0.1"), nil,
			func(d *Deps) { d.IPsec = fakeIPsec{fake} })
		synctest.Wait()
		got, err := n.ctl.Counters(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if v, ok := got["ipsec_peer_loads_refused"]; !ok || v != 0 {
			t.Errorf("show counters before any refusal: ipsec_peer_loads_refused %d (present %v), want 0", v, ok)
		}
		peers := fake.State().Peers
		if len(peers) != 1 {
			t.Fatalf("wanted peers %+v, want the NHS", peers)
		}
		for range 2 {
			if !fake.Refuse(peers[0].Name, "ipsec: load-conn: invalid value") {
				t.Fatal("NHS peer not wanted")
			}
		}
		wantCounted(t, n, api.Counters{"ipsec_peer_loads_refused": 2}, "dmvpnd_ipsec_peer_loads_refused_total", `
# HELP dmvpnd_ipsec_peer_loads_refused_total Per-peer IPsec connections charon refused (each refused load-conn; the peer is retried with backoff, the others are unaffected).
# TYPE dmvpnd_ipsec_peer_loads_refused_total counter
dmvpnd_ipsec_peer_loads_refused_total 2
`)
		n.stop(t)
	})
}
