package config

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"time"
)

func (c *Config) validateBGP(v *validator) {
	b := c.BGP
	if !b.Enabled {
		return
	}
	hub := c.NHRP.Role == RoleHub
	if b.ASN == 0 {
		v.add("bgp.asn", "required (1..4294967295)")
	} else if b.ASN == 23456 {
		v.add("bgp.asn", "23456 is AS_TRANS and cannot be used")
	}
	if !b.RouterID.Is4() {
		v.add("bgp.router_id", "%s is not an IPv4 address", orUnset(b.RouterID))
	}
	if b.Listen.IsValid() && b.Listen.Port() == 0 {
		v.add("bgp.listen", "%s has port 0", b.Listen)
	}
	seen := map[netip.Addr]int{}
	for i, n := range b.Neighbors {
		p := fmt.Sprintf("bgp.neighbors[%d].address", i)
		if !n.Address.IsValid() {
			v.add(p, "required")
			continue
		}
		c.checkInTunnel(v, p, n.Address)
		if j, dup := seen[n.Address]; dup {
			v.add(p, "%s is already bgp.neighbors[%d]", n.Address, j)
		}
		seen[n.Address] = i
	}
	if d := b.Dynamic.Prefix; d.IsValid() {
		if !hub {
			v.add("bgp.dynamic.prefix", "only a hub accepts dynamic neighbors (role is %s)", c.NHRP.Role)
		}
		checkMasked(v, "bgp.dynamic.prefix", d)
	} else if b.Dynamic.ASN != 0 {
		v.add("bgp.dynamic.prefix", "required when bgp.dynamic.asn is set")
	}
	if !hub && len(b.Neighbors) == 0 {
		v.add("bgp.neighbors", "a spoke needs at least one BGP neighbor (its hubs)")
	}
	for i, p := range b.Prefixes {
		checkMasked(v, fmt.Sprintf("bgp.prefixes[%d]", i), p)
	}
	switch b.HubMode {
	case "":
	case HubReflect, HubSummary:
		if !hub {
			v.add("bgp.hub_mode", "only applies to a hub (role is %s)", c.NHRP.Role)
		}
	default:
		v.add("bgp.hub_mode", "%q is not reflect or summary", b.HubMode)
	}
	if b.HubMode == HubSummary && len(b.Summaries) == 0 {
		v.add("bgp.summaries", "hub_mode summary needs at least one summary prefix")
	}
	if b.HubMode != HubSummary && len(b.Summaries) > 0 {
		v.add("bgp.summaries", "only used with hub_mode summary")
	}
	for i, p := range b.Summaries {
		checkMasked(v, fmt.Sprintf("bgp.summaries[%d]", i), p)
	}
	if b.GRPCListen == "" {
		// The default lives beside the control socket, so that one key
		// places both (and two daemons on one host never share it).
		c.BGP.GRPCListen = "unix:" + filepath.Join(filepath.Dir(c.Control.Socket), "gobgp.sock")
	} else if g := b.GRPCListen; g != "off" {
		checkGRPCListen(v, g)
	}
	c.validateBGPPolicy(v)
}

func (c *Config) validateBGPPolicy(v *validator) {
	b := c.BGP
	for i, p := range b.LANSpace {
		checkMasked(v, fmt.Sprintf("bgp.lan_space[%d]", i), p)
	}
	for i, r := range b.Accept {
		path := fmt.Sprintf("bgp.accept[%d]", i)
		if !r.Prefix.IsValid() {
			v.add(path+".prefix", "required")
			continue
		}
		checkMasked(v, path+".prefix", r.Prefix)
		ge, le := int(r.GE), int(r.LE)
		if ge == 0 {
			ge = r.Prefix.Bits()
		}
		if le == 0 {
			le = 32
		}
		if (r.GE != 0 && ge < r.Prefix.Bits()) || le > 32 || ge > le || (r.LE != 0 && le < r.Prefix.Bits()) {
			v.add(path, "need %d <= ge <= le <= 32, got ge %d le %d", r.Prefix.Bits(), r.GE, r.LE)
		}
	}
	switch b.MaxPrefixAction {
	case "", "teardown":
	case "drop":
		if c.NHRP.Role == RoleHub {
			v.add("bgp.max_prefix_action", "drop is not supported on a hub (the excess routes would still be reflected to the other spokes); use teardown")
		}
	default:
		v.add("bgp.max_prefix_action", "%q is not teardown or drop", b.MaxPrefixAction)
	}
	if b.Dynamic.Limit < 0 {
		v.add("bgp.dynamic.limit", "must not be negative")
	}
	if (b.Dynamic.Limit != 0 || b.Dynamic.RequireRegistration) && c.NHRP.Role != RoleHub {
		v.add("bgp.dynamic", "limit and require_registration only apply to a hub (role is %s)", c.NHRP.Role)
	}
	if len(b.Password.Reveal()) > 80 {
		v.add("bgp.password", "longer than 80 bytes (TCP MD5 keys are at most 80)")
	}
	gr := b.GracefulRestart
	if gr.RestartTime < 0 || gr.RestartTime > 4095*time.Second || gr.RestartTime%time.Second != 0 {
		v.add("bgp.graceful_restart.restart_time", "%s is not whole seconds within 0..4095s", gr.RestartTime)
	}
	if gr.StaleTime < 0 || gr.StaleTime%time.Second != 0 {
		v.add("bgp.graceful_restart.stale_time", "%s is not whole seconds", gr.StaleTime)
	}
	tm := b.Timers
	if tm.Hold%time.Second != 0 || tm.Hold < 3*time.Second || tm.Hold > 65535*time.Second {
		v.add("bgp.timers.hold", "%s is not whole seconds within 3s..65535s (RFC 4271)", tm.Hold)
	}
	switch {
	case tm.Keepalive == 0:
		// The default follows the hold time (RFC 4271 10 suggests a third).
		c.BGP.Timers.Keepalive = (tm.Hold / 3).Truncate(time.Second)
	case tm.Keepalive < 0 || tm.Keepalive%time.Second != 0 || tm.Keepalive >= tm.Hold:
		v.add("bgp.timers.keepalive", "%s is not whole seconds below the hold time %s", tm.Keepalive, tm.Hold)
	}
}

func checkGRPCListen(v *validator, g string) {
	if path, ok := strings.CutPrefix(g, "unix:"); ok {
		if !filepath.IsAbs(path) {
			v.add("bgp.grpc_listen", "%q: unix socket path is not absolute", g)
		}
		return
	}
	ap, err := netip.ParseAddrPort(g)
	switch {
	case err != nil:
		v.add("bgp.grpc_listen", "%q is not address:port or unix:/path", g)
	case !ap.Addr().IsLoopback():
		v.add("bgp.grpc_listen", "%s is not a loopback address (the gRPC API has no authentication)", ap.Addr())
	}
}

func checkMasked(v *validator, path string, p netip.Prefix) {
	if p != p.Masked() {
		v.add(path, "%s has host bits set (did you mean %s?)", p, p.Masked())
	}
}

func orUnset(a netip.Addr) string {
	if !a.IsValid() {
		return "unset"
	}
	return a.String()
}
