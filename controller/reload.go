package controller

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"reflect"
	"strings"

	"go.uber.org/zap"

	"github.com/dmvpnd/dmvpnd/controller/config"
)

// Reload applies a new, validated configuration without touching what the
// change leaves alone. next must differ from the running configuration only
// in keys a reload applies (config.Diff says Live; config.Effective builds
// such a configuration from a file); a restart-only change is refused with
// its keys named, and the running configuration stays.
//
// What changes how:
//   - tunnel key and MTU: the tunnel is adjusted in place (never re-created);
//   - tunnel.host_address swaps the address layout in place, the new
//     address and route before the old go (the tunnel prefix is never
//     unrouted; the tunnel address stays, so sessions bound to it live);
//   - NHRP settings the engine uses (holding time, NHSs, authentication,
//     registration mode, shortcut, limits) restart the NHRP engine over
//     the kernel state it leaves, which the new engine adopts as after a
//     daemon restart (adopt.go): neighbor entries and shortcut routes stay
//     while it re-registers and re-resolves;
//   - nhrp.redirect installs or removes the hub's hairpin trigger;
//   - BGP neighbors, import policy (lan_space, accept, accept_default, the
//     configured NBMA addresses), limits, password and prefixes go to the
//     speaker (routing.Speaker.Reconfigure): a neighbor whose settings did
//     not change keeps its session; a hub's spoke sessions restart when
//     the spokes' settings (password, max_prefixes) change;
//   - IPsec credentials and proposals are handed to the IPsec manager: new
//     SAs use them, established ones keep theirs until they rekey.
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
	changes := config.Diff(cur, next)
	var restart []string
	changed := map[string]bool{}
	for _, ch := range changes {
		if ch.Disposition == config.Restart {
			restart = append(restart, ch.Key)
		}
		changed[ch.Key] = true
	}
	if len(restart) > 0 {
		return fmt.Errorf("controller: reload: %s: restart dmvpnd to apply", strings.Join(restart, ", "))
	}
	if len(changes) == 0 {
		return nil
	}
	if changed["tunnel.key"] || changed["tunnel.mtu"] || changed["tunnel.host_address"] {
		ifindex, err := c.deps.Dataplane.EnsureTunnel(tunnelConfig(next))
		if err != nil {
			return fmt.Errorf("controller: reload: %w", err)
		}
		c.ifindex = ifindex
	}
	if err := c.reconfigureBGP(ctx, next); err != nil {
		return fmt.Errorf("controller: reload: %w", err)
	}
	if c.deps.IPsec != nil && next.IPsec.Enabled && anyPrefix(changed, "ipsec.") {
		ic := ipsecConfig(next, c.nbma, c.log)
		if err := c.deps.IPsec.SetCredentials(ic.Auth, ic.IKEProposals, ic.ESPProposals); err != nil {
			return fmt.Errorf("controller: reload: %w", err)
		}
	}
	c.cfgp.Store(next)
	c.dirty.qos = true // qos.* and nhrp.group are live
	if changed["nhrp.redirect"] {
		if err := c.setRedirect(next.NHRP.Redirect); err != nil {
			c.log.Error("nhrp.redirect: changing the hairpin trigger", zap.Error(err))
		}
	}
	if !reflect.DeepEqual(engineConfig(cur, c.nbma), engineConfig(next, c.nbma)) {
		if err := c.restartEngine(cur); err != nil {
			c.cfgp.Store(cur)
			return fmt.Errorf("controller: reload: %w", err)
		}
	}
	if changed["nhrp.limits.cache_size"] {
		c.sizeNeighborTable()
	}
	for _, ch := range changes {
		c.log.Info("configuration changed", zap.String("key", ch.Key), zap.String("change", ch.Values()))
	}
	return nil
}

// reconfigureBGP hands the speaker the configuration next derives when it
// differs from what the speaker runs with (computed once: next's alone).
func (c *Controller) reconfigureBGP(ctx context.Context, next *config.Config) error {
	if c.bgp == nil {
		return nil
	}
	is, err := speakerConfig(next)
	if err != nil {
		return err
	}
	if reflect.DeepEqual(c.bgpCfg, is) {
		return nil
	}
	if err := c.bgp.Reconfigure(ctx, is); err != nil {
		return err
	}
	c.bgpCfg = is
	return nil
}

func anyPrefix(keys map[string]bool, prefix string) bool {
	for k := range keys {
		if strings.HasPrefix(k, prefix) {
			return true
		}
	}
	return false
}

// setRedirect installs or removes the hub's hairpin trigger (the NFLOG
// source is opened at start on every hub, so only the rule changes).
func (c *Controller) setRedirect(on bool) error {
	if c.deps.Hairpins == nil {
		if on {
			return errors.New("no hairpin trigger on this node")
		}
		return nil
	}
	if on {
		return c.deps.Hairpins.Install(c.ifindex)
	}
	return c.deps.Hairpins.Remove()
}

// sizeNeighborTable sizes the kernel's neighbor table for a hub's cache.
func (c *Controller) sizeNeighborTable() {
	if c.deps.SizeNeighborTable == nil || c.config().NHRP.Role != config.RoleHub {
		return
	}
	switch err := c.deps.SizeNeighborTable(c.config().NHRP.Limits.CacheSize); {
	case errors.Is(err, fs.ErrNotExist):
		// The table's sysctls exist only in the initial network
		// namespace; a hub in another one relies on its host's.
		c.log.Info("kernel neighbor table not sized: its sysctls belong to the initial network namespace")
	case err != nil:
		c.log.Warn("sizing the kernel neighbor table", zap.Error(err))
	}
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
