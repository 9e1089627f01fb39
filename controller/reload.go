package controller

import (
	"context"
	"fmt"
	"reflect"
	"slices"

	"go.uber.org/zap"

	"github.com/dmvpnd/dmvpnd/controller/config"
)

// Reload applies a new, validated configuration without touching what the
// change leaves alone: changed BGP prefixes are re-originated, a changed
// tunnel is adjusted in place (never re-created). Changes to NHRP, IPsec or
// the other BGP settings are refused for now (restart dmvpnd to apply
// them); the running configuration then stays in effect.
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
	if !reflect.DeepEqual(cur.NHRP, next.NHRP) {
		return fmt.Errorf("controller: reload: nhrp settings changed: restart dmvpnd to apply them")
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
	c.log.Info("configuration reloaded", zap.Int("prefixes", len(next.BGP.Prefixes)))
	return nil
}
