package lab

import "testing"

func TestStrongswanConf(t *testing.T) {
	got := renderStrongswanConf("/tmp/lab/hub/strongswan/charon.vici", "/r/nodes/hub/charon.log", "retransmit_tries = 2\n", DefaultCharonPlugins)
	golden(t, "strongswan.conf", got)
}
