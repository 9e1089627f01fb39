package controller

import (
	"github.com/dmvpnd/dmvpnd/controller/config"
	"github.com/dmvpnd/dmvpnd/nhrp"
)

// ignoresIndication reports whether the received NHRP packet b is a
// Traffic Indication this node must not act on: a spoke configured with
// nhrp.shortcut false builds no shortcuts (its traffic stays on the hub
// path), so it drops redirects before the engine resolves anything.
func ignoresIndication(cfg *config.Config, b []byte) bool {
	if cfg.NHRP.Role != config.RoleSpoke || cfg.NHRP.Shortcut {
		return false
	}
	t, ok := nhrp.PeekType(b)
	return ok && t == nhrp.TypeTrafficIndication
}
