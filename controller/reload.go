package controller

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"reflect"
	"strings"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/dmvpnd/dmvpnd/controller/config"
	"github.com/dmvpnd/dmvpnd/routing"
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
//
// The speaker's Reconfigure makes blocking calls into GoBGP, so it never
// runs on the loop: the change is checked on the loop (the diff, the
// restart-only refusal, the speaker's configuration), the speaker is
// reconfigured from Reload's goroutine while the loop keeps serving NHRP,
// then the rest is applied on the loop. The speaker goes first: when it
// refuses, nothing else is applied. When the loop's part fails after the
// speaker took the change (the tunnel cannot be adjusted, the IPsec
// manager refuses the credentials, the new engine does not start), the
// speaker is handed its previous configuration again, and the loop's
// steps already taken are put back in reverse (the tunnel, the IPsec
// credentials, the hairpin trigger); either way the running configuration
// stays. Concurrent Reloads are applied one after the other.
func (c *Controller) Reload(ctx context.Context, next *config.Config) error {
	c.reloadMu.Lock()
	defer c.reloadMu.Unlock()
	var (
		p   reloadPlan
		err error
	)
	if runErr := c.run(ctx, func() { p, err = c.planReload(next) }); runErr != nil {
		return fmt.Errorf("controller: reload: %w", runErr)
	}
	if err != nil || len(p.changes) == 0 {
		return err
	}
	if p.bgp != nil {
		if err := p.bgp.Reconfigure(ctx, p.bgpNext); err != nil {
			return fmt.Errorf("controller: reload: %w", err)
		}
	}
	if err := c.applyOnLoop(ctx, p); err != nil {
		c.restoreBGP(ctx, p)
		return err
	}
	if p.bgp != nil {
		c.bgpCfg = p.bgpNext
	}
	return nil
}

// reloadPlan is a checked reload: what changes, and the speaker's part.
type reloadPlan struct {
	cur, next *config.Config
	changes   []config.Change
	changed   map[string]bool
	// bgp is the speaker to reconfigure with bgpNext; nil when the
	// speaker's configuration does not change.
	bgp     BGP
	bgpNext routing.Config
}

// planReload checks next against the running configuration (on the
// loop): restart-only changes are refused with their keys named.
func (c *Controller) planReload(next *config.Config) (reloadPlan, error) {
	p := reloadPlan{cur: c.config(), next: next, changed: map[string]bool{}}
	p.changes = config.Diff(p.cur, next)
	var restart []string
	for _, ch := range p.changes {
		if ch.Disposition == config.Restart {
			restart = append(restart, ch.Key)
		}
		p.changed[ch.Key] = true
	}
	if len(restart) > 0 {
		return reloadPlan{}, fmt.Errorf("controller: reload: %s: restart dmvpnd to apply", strings.Join(restart, ", "))
	}
	if len(p.changes) == 0 || c.bgp == nil {
		return p, nil
	}
	is, err := speakerConfig(next)
	if err != nil {
		return reloadPlan{}, fmt.Errorf("controller: reload: %w", err)
	}
	if !reflect.DeepEqual(c.bgpCfg, is) {
		p.bgp, p.bgpNext = c.bgp, is
	}
	return p, nil
}

// applyOnLoop runs applyReload on the loop. When ctx ends first, the
// loop either never runs it (its error is ctx's) or has begun it, and
// its outcome is waited for: the caller learns what was applied.
func (c *Controller) applyOnLoop(ctx context.Context, p reloadPlan) error {
	var (
		claimed atomic.Bool
		err     error
	)
	applied := make(chan struct{})
	runErr := c.run(ctx, func() {
		if claimed.CompareAndSwap(false, true) {
			err = c.applyReload(p)
			close(applied)
		}
	})
	if runErr != nil {
		if claimed.CompareAndSwap(false, true) {
			return fmt.Errorf("controller: reload: %w", runErr)
		}
		<-applied
	}
	return err
}

// restoreBGP hands the speaker its previous configuration after the loop
// refused the rest of a reload it had taken. ctx may have ended (that can
// be why the loop's part was not applied); the restore is bounded on its own.
func (c *Controller) restoreBGP(ctx context.Context, p reloadPlan) {
	if p.bgp == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), bgpRestoreTimeout)
	defer cancel()
	if err := p.bgp.Reconfigure(ctx, c.bgpCfg); err != nil {
		c.log.Error("reload failed: handing BGP its previous configuration back", zap.Error(err))
		// What the speaker runs is unknown: the next reload hands it
		// its configuration whatever it is.
		c.bgpCfg = routing.Config{}
	}
}

// bgpRestoreTimeout bounds handing the speaker back its configuration.
const bgpRestoreTimeout = 10 * time.Second

// applyReload applies a checked reload's loop-side changes (on the loop),
// after the speaker took its part.
func (c *Controller) applyReload(p reloadPlan) (err error) {
	cur, next, changed := p.cur, p.next, p.changed
	// undo holds what puts back a step already applied, run in reverse
	// when a later step fails, so that a failed reload leaves the tunnel
	// and the IPsec credentials as the running configuration has them.
	var undo []func()
	defer func() {
		if err == nil {
			return
		}
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
	}()
	if changed["tunnel.key"] || changed["tunnel.mtu"] || changed["tunnel.host_address"] {
		ifindex, err := c.deps.Dataplane.EnsureTunnel(tunnelConfig(next))
		if err != nil {
			return fmt.Errorf("controller: reload: %w", err)
		}
		c.ifindex = ifindex
		undo = append(undo, func() {
			ifindex, err := c.deps.Dataplane.EnsureTunnel(tunnelConfig(cur))
			if err != nil {
				c.log.Error("reload failed: restoring the tunnel", zap.Error(err))
				return
			}
			c.ifindex = ifindex
		})
	}
	if c.deps.IPsec != nil && next.IPsec.Enabled && anyPrefix(changed, "ipsec.") {
		ic := ipsecConfig(next, c.nbma, c.log)
		if err := c.deps.IPsec.SetCredentials(ic.Auth, ic.IKEProposals, ic.ESPProposals); err != nil {
			return fmt.Errorf("controller: reload: %w", err)
		}
		undo = append(undo, func() {
			ic := ipsecConfig(cur, c.nbma, c.log)
			if err := c.deps.IPsec.SetCredentials(ic.Auth, ic.IKEProposals, ic.ESPProposals); err != nil {
				c.log.Error("reload failed: restoring the IPsec credentials", zap.Error(err))
			}
		})
	}
	c.cfgp.Store(next)
	undo = append(undo, func() { c.cfgp.Store(cur) })
	c.dirty.qos = true // qos.* and nhrp.group are live
	if changed["nhrp.redirect"] {
		if err := c.setRedirect(next.NHRP.Redirect); err != nil {
			c.log.Error("nhrp.redirect: changing the hairpin trigger", zap.Error(err))
		}
		undo = append(undo, func() {
			if err := c.setRedirect(cur.NHRP.Redirect); err != nil {
				c.log.Error("reload failed: restoring the hairpin trigger", zap.Error(err))
			}
		})
	}
	if !reflect.DeepEqual(engineConfig(cur, c.nbma), engineConfig(next, c.nbma)) {
		if err := c.restartEngine(cur); err != nil {
			return fmt.Errorf("controller: reload: %w", err)
		}
	}
	if changed["nhrp.limits.cache_size"] {
		c.sizeNeighborTable()
	}
	for _, ch := range p.changes {
		c.log.Info("configuration changed", zap.String("key", ch.Key), zap.String("change", ch.Values()))
	}
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
