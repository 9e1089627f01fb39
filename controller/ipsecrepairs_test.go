package controller

import (
	"testing"
	"testing/synctest"

	"github.com/dmvpnd/dmvpnd/controller/api"
	"github.com/dmvpnd/dmvpnd/ipsec"
	"github.com/dmvpnd/dmvpnd/ipsec/ipsectest"
	"github.com/dmvpnd/dmvpnd/kernel/kerneltest"
)

// repairingIPsec reports repairs in its State, as ipsec.Manager does after
// reloading what charon lost.
type repairingIPsec struct {
	fakeIPsec
	conns, creds uint64
}

func (r repairingIPsec) State() ipsec.State {
	st := r.fakeIPsec.State()
	st.RepairedConns, st.RepairedCreds = r.conns, r.creds
	return st
}

// TestIPsecRepairsCounted: the IPsec manager's repairs show in show
// counters and as dmvpnd_ipsec_repairs_total.
func TestIPsecRepairsCounted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		netw := kerneltest.NewNetwork()
		n := start(t, netw, "spoke", spokeYAML("198.51.100.2", "10.0.0.2/24", "198.51.100.1", "10.0.0.1"), nil,
			func(d *Deps) {
				d.IPsec = repairingIPsec{fakeIPsec{ipsectest.NewFake(nil)}, 3, 1}
			})
		synctest.Wait()
		wantCounted(t, n, api.Counters{"ipsec_repaired_connections": 3, "ipsec_repaired_credentials": 1},
			"dmvpnd_ipsec_repairs_total", `
# HELP dmvpnd_ipsec_repairs_total Connections and credentials dmvpnd loaded into charon that charon had lost or held differently, loaded again, by kind (connection, credential).
# TYPE dmvpnd_ipsec_repairs_total counter
dmvpnd_ipsec_repairs_total{kind="connection"} 3
dmvpnd_ipsec_repairs_total{kind="credential"} 1
`)
		n.stop(t)

		plain := start(t, netw, "plain", spokeYAML("198.51.100.3", "10.0.0.3/24", "198.51.100.1", "10.0.0.1"), nil)
		synctest.Wait()
		wantNotShown(t, plain, "ipsec_repaired_connections", "ipsec_repaired_credentials") // no IPsec
		plain.stop(t)
	})
}
