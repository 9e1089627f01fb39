package main

import (
	"github.com/dmvpnd/dmvpnd/controller/config"
	"github.com/dmvpnd/dmvpnd/ipsec"
)

// CharonConf renders /etc/dmvpnd/strongswan.conf for dmvpnd-charon.service:
// ipsec.StrongswanConf (the plugin set dmvpnd needs, no bypass-lan, no
// routes) with the VICI socket dmvpnd dials by default, logging to stderr
// (the journal).
func CharonConf() string {
	return `# strongswan.conf of the charon dedicated to dmvpnd (dmvpnd-charon.service,
# STRONGSWAN_CONF=/etc/dmvpnd/strongswan.conf). Only dmvpnd talks to it, on
# its own VICI socket: the system's swanctl and strongswan.service use
# /etc/strongswan.conf and /var/run/charon.vici and never see it. To look:
#   STRONGSWAN_CONF=/etc/dmvpnd/strongswan.conf swanctl --list-sas
# Do not run swanctl --load-all against it: dmvpnd reloads what it unloads
# within 30 s, but the SAs of that window may go.
` + ipsec.StrongswanConf(ipsec.CharonConf{Socket: config.DefaultViciSocket, LogLevel: 1})
}
