package controller

import (
	"context"
	"fmt"
	"net/netip"
	"reflect"
	"slices"

	"go.uber.org/zap"

	"github.com/dmvpnd/dmvpnd/controller/config"
)

// Reload applies a new, validated configuration without touching what the
// change leaves alone: changed BGP prefixes are re-originated, a changed
// tunnel is adjusted in place (never re-created), and changed NHRP settings
// (holding time, NHSs, authentication, limits, registration mode, shortcut)
// restart the NHRP engine over the kernel state it leaves, which the new
// engine adopts as after a daemon restart (adopt.go): neighbor entries and
// shortcut routes stay while it re-registers and re-resolves. Changes to
// the role, redirect, IPsec or the other BGP settings are refused (restart
// dmvpnd to apply them); the running configuration then stays in effect.
func (c *Controller) Reload(ctx context.Context, next *config.Config) error {
	var err error
	runErr := c.run(ctx, func() { err = c.reload(ctx, next) })
	if runErr != nil {
		return fmt.Errorf("controller: reload: %w", runErr)
	}
	return err
}

func (c *Controller) reload(ctx context.Context, next *config.Config) error {
	cur := c.config()
	nhrpChanged := !reflect.DeepEqual(cur.NHRP, next.NHRP)
	if nhrpChanged && (cur.NHRP.Role != next.NHRP.Role || cur.NHRP.Redirect != next.NHRP.Redirect) {
		return fmt.Errorf("controller: reload: nhrp.role or nhrp.redirect changed: restart dmvpnd to apply them")
	}
	if !reflect.DeepEqual(cur.IPsec, next.IPsec) {
		return fmt.Errorf("controller: reload: ipsec settings changed: restart dmvpnd to apply them")
	}
	curBGP, nextBGP := cur.BGP, next.BGP
	curBGP.Prefixes, nextBGP.Prefixes = nil, nil
	if !reflect.DeepEqual(curBGP, nextBGP) {
		return fmt.Errorf("controller: reload: bgp settings other than prefixes changed: restart dmvpnd to apply them")
	}
	if cur.Tunnel != next.Tunnel {
		if cur.Tunnel.Name != next.Tunnel.Name || cur.Tunnel.LocalNBMA != next.Tunnel.LocalNBMA {
			return fmt.Errorf("controller: reload: tunnel name or local NBMA changed: restart dmvpnd to apply them")
		}
		ifindex, err := c.deps.Dataplane.EnsureTunnel(tunnelConfig(next))
		if err != nil {
			return fmt.Errorf("controller: reload: %w", err)
		}
		c.ifindex = ifindex
	}
	if c.bgp != nil && !slices.Equal(cur.BGP.Prefixes, next.BGP.Prefixes) {
		if err := c.bgp.SetPrefixes(ctx, originated(next)); err != nil {
			return fmt.Errorf("controller: reload: %w", err)
		}
	}
	c.cfgp.Store(next)
	if nhrpChanged {
		if err := c.restartEngine(cur); err != nil {
			c.cfgp.Store(cur)
			return fmt.Errorf("controller: reload: %w", err)
		}
	}
	c.log.Info("configuration reloaded", zap.Int("prefixes", len(next.BGP.Prefixes)))
	return nil
}

// restartEngine replaces the NHRP engine after an NHRP settings change. The
// old engine is dropped without deregistering: what it programmed stays in
// the kernel and is adopted by the new one, so traffic keeps flowing while
// the new engine registers and re-resolves.
func (c *Controller) restartEngine(prev *config.Config) error {
	old := c.eng
	if err := c.startEngine(); err != nil {
		c.eng = old
		return err
	}
	if c.adopt.timer != nil {
		c.adopt.timer.Stop()
	}
	c.adopt = adoption{}
	c.shortcuts = map[netip.Prefix]netip.Addr{}
	c.lastCounters = nil
	if c.deps.IPsec != nil {
		for _, n := range prev.NHRP.NHS {
			delete(c.peers, n.NBMA)
		}
		c.wantStaticPeers()
	}
	c.dirty.routes = true
	// The new engine knows no SA yet.
	c.protGenKnown = false
	c.syncProtections()
	c.eng.Start()
	c.log.Info("nhrp settings changed: engine restarted over the adopted kernel state")
	return nil
}
