package controller

import (
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"

	"github.com/dmvpnd/dmvpnd/controller/config"
	"github.com/dmvpnd/dmvpnd/kernel"
	"github.com/dmvpnd/dmvpnd/nhrp/engine"
	"github.com/dmvpnd/dmvpnd/routing"
)

// defaultMTU is the tunnel MTU when the config leaves it out: 1500 minus
// outer IPv4 (20), GRE with key (8) and ESP overhead with room to spare.
const defaultMTU = 1400

// shortcutMetric is the kernel metric of NHRP shortcut routes: lower than
// routing.DefaultRouteMetric so a shortcut wins over a BGP route of equal
// length.
const shortcutMetric = 10

// tunnelConfig derives the kernel tunnel from the config.
func tunnelConfig(c *config.Config) kernel.TunnelConfig {
	mtu := c.Tunnel.MTU
	if mtu == 0 {
		mtu = defaultMTU
	}
	return kernel.TunnelConfig{
		Name:        c.Tunnel.Name,
		Local:       c.Tunnel.LocalNBMA,
		Underlay:    c.Tunnel.UnderlayDevice,
		Key:         c.Tunnel.Key,
		TTL:         64,
		MTU:         mtu,
		Address:     c.Tunnel.Address,
		HostAddress: c.Tunnel.HostAddress,
	}
}

// localNBMA is this node's claimed NBMA address: tunnel.local_nbma, or
// the address of tunnel.underlay_device found through deviceAddr.
func localNBMA(c *config.Config, deviceAddr func(string) (netip.Addr, error)) (netip.Addr, error) {
	if c.Tunnel.LocalNBMA.IsValid() {
		return c.Tunnel.LocalNBMA, nil
	}
	if c.Tunnel.UnderlayDevice == "" || deviceAddr == nil {
		return netip.Addr{}, errors.New("controller: tunnel.local_nbma is not set and no underlay device address can be read")
	}
	a, err := deviceAddr(c.Tunnel.UnderlayDevice)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("controller: tunnel.underlay_device: %w", err)
	}
	return a, nil
}

// engineConfig derives the NHRP engine's configuration. The I/O hooks are
// filled in by the caller.
func engineConfig(c *config.Config, nbma netip.Addr) engine.Config {
	ec := engine.Config{
		Proto:       c.Tunnel.Address.Addr(),
		NBMA:        nbma,
		Server:      c.NHRP.Role == config.RoleHub,
		Unique:      c.NHRP.Registration != config.RegistrationNoUnique,
		HoldingTime: c.NHRP.HoldingTime,
		Group:       c.NHRP.Group,
		IPsec:       c.IPsec.Enabled,
		MaxCache:    c.NHRP.Limits.CacheSize,
		MaxPending:  c.NHRP.Limits.Pending,
		SourceRate:  c.NHRP.Limits.PerSourceRate,

		RegistrationInterval: c.NHRP.RegistrationInterval,

		TunnelPrefix:      c.Tunnel.Address.Masked(),
		AddressesPerPeer:  c.NHRP.Limits.AddressesPerPeer,
		MaxHolding:        c.NHRP.Limits.MaxHoldingTime,
		MaxCachePerSource: c.NHRP.Limits.PerSourceCache,
	}
	if ec.SourceRate > 0 {
		ec.SourceBurst = 2 * ec.SourceRate
	}
	if ec.Server {
		// A hub accepts registrations for addresses inside its tunnel prefix.
		ec.AcceptPrefixes = []netip.Prefix{c.Tunnel.Address.Masked()}
	}
	if !c.NHRP.Authentication.IsZero() {
		ec.AuthPassword = []byte(c.NHRP.Authentication.Reveal())
	}
	for _, n := range c.NHRP.NHS {
		ec.NHSs = append(ec.NHSs, engine.NHSConfig{NBMA: n.NBMA, Proto: n.Protocol.Addr, Priority: n.Priority})
	}
	return ec
}

// routingConfig derives the BGP speaker's configuration.
func routingConfig(cfg *config.Config) (routing.Config, error) {
	b := cfg.BGP
	rc := routing.Config{
		ASN:             b.ASN,
		RouterID:        b.RouterID,
		Prefixes:        b.Prefixes,
		API:             grpcAPI(b.GRPCListen),
		APIWrite:        b.GRPCWrite,
		Tunnel:          cfg.Tunnel.Address.Masked(),
		Import:          routing.ImportConfig{Accept: acceptRanges(b), AcceptDefault: b.AcceptDefault},
		Protected:       protectedPrefixes(cfg),
		MaxPrefixes:     b.MaxPrefixes,
		MaxPrefixAction: routing.MaxPrefixAction(b.MaxPrefixAction),
		Password:        b.Password.Reveal(),
		GracefulRestart: routing.GracefulRestart{Enabled: b.GracefulRestart.Enabled,
			RestartTime: b.GracefulRestart.RestartTime, StaleTime: b.GracefulRestart.StaleTime},
		HoldTime:          b.Timers.Hold,
		KeepaliveInterval: b.Timers.Keepalive,
	}
	if !rc.RouterID.IsValid() {
		rc.RouterID = cfg.Tunnel.Address.Addr()
	}
	if b.Listen.IsValid() {
		rc.ListenAddress, rc.ListenPort = b.Listen.Addr(), int(b.Listen.Port())
	}
	switch cfg.NHRP.Role {
	case config.RoleHub:
		rc.Role = routing.RoleHub
		if !b.Listen.IsValid() {
			rc.ListenAddress = cfg.Tunnel.Address.Addr()
		}
		rc.Hub = routing.HubConfig{DynamicRange: b.Dynamic.Prefix, Summaries: b.Summaries,
			EBGPSpokes:   b.Dynamic.ASN != 0 && b.Dynamic.ASN != b.ASN,
			DynamicLimit: b.Dynamic.Limit, RequireRegistration: b.Dynamic.RequireRegistration}
		if !rc.Hub.DynamicRange.IsValid() {
			rc.Hub.DynamicRange = cfg.Tunnel.Address.Masked()
		}
		rc.Hub.Mode = routing.HubModeReflect
		if b.HubMode == config.HubSummary {
			rc.Hub.Mode = routing.HubModeSummary
		}
		for _, n := range b.Neighbors {
			rc.Hub.Peers = append(rc.Hub.Peers, routing.Neighbor{Address: n.Address, PeerAS: n.ASN,
				LocalAddress: cfg.Tunnel.Address.Addr()})
		}
	case config.RoleSpoke:
		rc.Role = routing.RoleSpoke
		if !b.Listen.IsValid() {
			rc.ListenPort = -1
		}
		for _, n := range b.Neighbors {
			rc.Spoke.Hubs = append(rc.Spoke.Hubs, routing.Neighbor{Address: n.Address, PeerAS: n.ASN,
				LocalAddress: cfg.Tunnel.Address.Addr()})
		}
	default:
		return routing.Config{}, fmt.Errorf("controller: unknown role %q", cfg.NHRP.Role)
	}
	return rc, nil
}

// grpcAPI turns the config's grpc_listen ("host:port" or "unix:/path", as
// config.BGP documents it) into the routing package's API address, which
// spells unix sockets "unix:///path".
func grpcAPI(listen string) string {
	if listen == "off" {
		return ""
	}
	path, ok := strings.CutPrefix(listen, "unix:")
	if !ok {
		return listen
	}
	return "unix://" + filepath.Clean(path)
}

// defaultLANSpace is bgp.lan_space when the config leaves it out: the
// private (RFC 1918) and shared (RFC 6598) address space.
var defaultLANSpace = []netip.Prefix{
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("100.64.0.0/10"),
}

// acceptRanges is the import policy's accept list: bgp.accept, or any
// prefix inside bgp.lan_space up to /24 (so that no neighbor can take over
// part of a /24 LAN with more-specifics; longer LAN prefixes need
// bgp.accept).
func acceptRanges(b config.BGP) []routing.PrefixRange {
	if len(b.Accept) > 0 {
		out := make([]routing.PrefixRange, 0, len(b.Accept))
		for _, r := range b.Accept {
			out = append(out, routing.PrefixRange{Prefix: r.Prefix, GE: r.GE, LE: r.LE})
		}
		return out
	}
	space := b.LANSpace
	if len(space) == 0 {
		space = defaultLANSpace
	}
	out := make([]routing.PrefixRange, 0, len(space))
	for _, p := range space {
		out = append(out, routing.PrefixRange{Prefix: p, LE: max(24, uint8(p.Bits()))})
	}
	return out
}

// protectedPrefixes are the configured NBMA addresses (this node's and the
// NHSs') that no BGP route may cover. Learned NBMA addresses are added at
// runtime (routing.Speaker.SetProtected).
func protectedPrefixes(c *config.Config) []netip.Prefix {
	var out []netip.Prefix
	if a := c.Tunnel.LocalNBMA; a.Is4() {
		out = append(out, netip.PrefixFrom(a, 32))
	}
	for _, n := range c.NHRP.NHS {
		if n.NBMA.Is4() {
			out = append(out, netip.PrefixFrom(n.NBMA, 32))
		}
	}
	return out
}
