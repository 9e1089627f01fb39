package lab

import (
	"testing"

	"github.com/dmvpnd/dmvpnd/e2e/golden"
	"github.com/dmvpnd/dmvpnd/ipsec"
)

func TestStrongswanConf(t *testing.T) {
	got := ipsec.StrongswanConf(ipsec.CharonConf{
		Socket: "/tmp/lab/hub/strongswan/charon.vici", Log: "/r/nodes/hub/charon.log",
		LogLevel: 1, Plugins: DefaultCharonPlugins, Extra: "retransmit_tries = 2\n",
	})
	golden.File(t, "strongswan.conf", got)
}
