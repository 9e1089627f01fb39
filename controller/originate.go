package controller

import (
	"net/netip"
	"slices"

	"github.com/dmvpnd/dmvpnd/controller/config"
)

// originated is every prefix the node's BGP speaker advertises: its LAN
// prefixes and, on a hub, the summaries. Speaker.SetPrefixes replaces the
// whole set, so passing only the LAN prefixes would withdraw a Phase 3
// hub's summaries.
func originated(cfg *config.Config) []netip.Prefix {
	out := slices.Clone(cfg.BGP.Prefixes)
	if cfg.NHRP.Role == config.RoleHub {
		out = append(out, cfg.BGP.Summaries...)
	}
	return out
}
