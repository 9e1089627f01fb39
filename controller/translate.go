package controller

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/dmvpnd/dmvpnd/controller/config"
	"github.com/dmvpnd/dmvpnd/kernel"
	"github.com/dmvpnd/dmvpnd/nhrp/engine"
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
		Name:     c.Tunnel.Name,
		Local:    c.Tunnel.LocalNBMA,
		Underlay: c.Tunnel.UnderlayDevice,
		Key:      c.Tunnel.Key,
		TTL:      64,
		MTU:      mtu,
		Address:  c.Tunnel.Address,
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
		IPsec:       c.IPsec.Enabled,
		MaxCache:    c.NHRP.Limits.CacheSize,
		MaxPending:  c.NHRP.Limits.Pending,
		SourceRate:  c.NHRP.Limits.PerSourceRate,

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
