package controller

import (
	"context"
	"errors"
	"maps"
	"net/netip"
	"strings"
	"time"

	"github.com/dmvpnd/dmvpnd/controller/api"
	"github.com/dmvpnd/dmvpnd/controller/config"
	"github.com/dmvpnd/dmvpnd/nhrp/engine"
	"github.com/dmvpnd/dmvpnd/routing"
)

var _ api.Source = (*Controller)(nil)

// errNotRunning answers API calls before Run started its loop.
var errNotRunning = errors.New("controller: not running yet")

// snapshot runs f on the loop; API calls made before the loop runs fail
// fast instead of hanging.
func (c *Controller) snapshot(ctx context.Context, f func()) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := c.run(ctx, f); err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return errNotRunning
		}
		return err
	}
	return nil
}

// Status reports readiness (readinessReasons): a node is ready when it
// can carry traffic through at least one hub.
func (c *Controller) Status(ctx context.Context) (api.Status, error) {
	st := api.Status{State: "starting", Role: string(c.config().NHRP.Role), Version: c.deps.Version, Started: c.startedAt()}
	var (
		nhss []engine.NHSStatus
		bgp  BGP
	)
	if err := c.snapshot(ctx, func() { nhss, bgp = c.eng.NHSs(), c.bgp }); err != nil {
		st.Reason = err.Error()
		return st, nil
	}
	var (
		sum    []routing.NeighborSummary
		sumErr error
	)
	if bgp != nil {
		sum, sumErr = bgp.Summary(ctx)
	}
	reasons := readinessReasons(c.config(), nhss, bgp != nil, sum, sumErr)
	if len(reasons) == 0 {
		st.Ready, st.State = true, "running"
	} else {
		st.State, st.Reason = "converging", strings.Join(reasons, "; ")
	}
	return st, nil
}

// readinessReasons says why a node is not ready (none: ready). Ready
// means usable through at least one hub, as a Cisco spoke is with one NHS
// up: a spoke must be registered with at least one NHS and, with BGP,
// have at least one configured session established; a node whose
// configured BGP sessions (a spoke's hubs, a hub's other hubs) are all
// down lists each of them. One hub of two down therefore leaves a spoke
// ready, so "dmvpnctl reload --wait" (ExecReload) does not wait for a box
// that is away. Sessions of a hub's dynamic range (spokes that come and
// go) never count. Status and the dmvpnd_ready gauge both use it.
func readinessReasons(cfg *config.Config, nhss []engine.NHSStatus, bgpOn bool, sum []routing.NeighborSummary, sumErr error) []string {
	reasons := []string{}
	if cfg.NHRP.Role == config.RoleSpoke {
		up := false
		for _, n := range nhss {
			up = up || n.State == engine.NHSUp
		}
		if !up {
			reasons = append(reasons, "not registered with any NHS")
		}
	}
	if bgpOn {
		switch {
		case sumErr != nil:
			reasons = append(reasons, "bgp: "+sumErr.Error())
		case len(sum) == 0 && cfg.NHRP.Role == config.RoleSpoke:
			reasons = append(reasons, "no BGP session")
		default:
			var down []string
			up := false
			for _, n := range sum {
				switch {
				case dynamicNeighbor(cfg, n.Neighbor):
				case n.State == routing.StateEstablished:
					up = true
				default:
					down = append(down, "bgp neighbor "+n.Neighbor.String()+" "+string(n.State))
				}
			}
			if !up {
				reasons = append(reasons, down...)
			}
		}
	}
	return reasons
}

func dynamicNeighbor(cfg *config.Config, a netip.Addr) bool {
	return cfg.BGP.Dynamic.Prefix.IsValid() && cfg.BGP.Dynamic.Prefix.Contains(a)
}

// Counters merges the engine's counters and the controller's own.
func (c *Controller) Counters(ctx context.Context) (api.Counters, error) {
	out := api.Counters{}
	err := c.snapshot(ctx, func() {
		for k, v := range c.eng.Counters() {
			out["nhrp_"+k] = v
		}
		maps.Copy(out, c.stats)
	})
	c.guardCounters(out)
	c.socketCounters(out)
	c.ipsecRepairCounters(out)
	if c.deps.IPsec != nil {
		out["ipsec_peer_loads_refused"] = c.deps.IPsec.State().LoadsRefused
	}
	if n := c.events.Lost(); n > 0 {
		out["events_lost"] = n
	}
	if r := c.mcastRep.Load(); r != nil {
		r.counters(out)
	}
	return out, err
}

// NHS lists the servers this node registers with.
func (c *Controller) NHS(ctx context.Context) ([]api.NHS, error) {
	var nhss []engine.NHSStatus
	if err := c.snapshot(ctx, func() { nhss = c.eng.NHSs() }); err != nil {
		return nil, err
	}
	out := make([]api.NHS, 0, len(nhss))
	for _, n := range nhss {
		a := api.NHS{NBMA: n.NBMA, Protocol: n.Proto, Priority: n.Priority, Reason: n.Reason,
			Since: n.Since, Expires: n.Expires}
		for _, cn := range c.config().NHRP.NHS {
			if cn.NBMA == n.NBMA {
				a.Dynamic = cn.Protocol.Dynamic()
			}
		}
		switch {
		case n.State == engine.NHSUp:
			a.State = api.NHSResponding
		case n.State == engine.NHSProbing:
			a.State = api.NHSExpecting
		case n.Standby:
			a.State, a.Reason = api.NHSDown, "standby: a preferred NHS serves"
		default:
			a.State = api.NHSWaiting
		}
		out = append(out, a)
	}
	return out, nil
}

// Cache lists the NHRP cache.
func (c *Controller) Cache(ctx context.Context) ([]api.CacheEntry, error) {
	var entries []engine.CacheEntry
	if err := c.snapshot(ctx, func() { entries = c.eng.Cache() }); err != nil {
		return nil, err
	}
	out := make([]api.CacheEntry, 0, len(entries))
	for _, e := range entries {
		out = append(out, apiCacheEntry(e))
	}
	return out, nil
}

func apiCacheEntry(e engine.CacheEntry) api.CacheEntry {
	bits := e.Proto.BitLen()
	a := api.CacheEntry{Prefix: netip.PrefixFrom(e.Proto, bits), Tunnel: e.Proto, NBMA: e.Claimed,
		ObservedNBMA: e.Observed, Expires: e.Expires, Group: e.Group}
	if !a.NBMA.IsValid() {
		a.NBMA = e.NBMA
	}
	switch e.Kind {
	case engine.KindRegistered:
		a.Type = api.CacheDynamic
	case engine.KindNHS:
		a.Type = api.CacheNHS
	case engine.KindResolved, engine.KindRequester:
		a.Type = api.CacheCached
	case engine.KindNegative:
		a.Type = api.CacheNegative
	}
	if e.Unique {
		a.Flags = append(a.Flags, api.FlagUnique)
	}
	if e.Observed.IsValid() {
		a.Flags = append(a.Flags, api.FlagNAT)
	}
	return a
}

// Shortcuts lists the shortcuts the engine tracks.
func (c *Controller) Shortcuts(ctx context.Context) ([]api.Shortcut, error) {
	var scs []engine.ShortcutStatus
	if err := c.snapshot(ctx, func() { scs = c.eng.Shortcuts() }); err != nil {
		return nil, err
	}
	out := make([]api.Shortcut, 0, len(scs))
	for _, s := range scs {
		if s.State != engine.ShortcutUp {
			continue
		}
		out = append(out, api.Shortcut{Prefix: s.Prefix, Via: s.Via, NBMA: s.NBMA, Expires: s.Expires})
	}
	return out, nil
}

// DMVPN is the show dmvpn view: one row per peer, its state from
// peerState (as the dmvpnd_peers gauge).
func (c *Controller) DMVPN(ctx context.Context) (api.DMVPN, error) {
	d := api.DMVPN{Interface: c.config().Tunnel.Name, Role: string(c.config().NHRP.Role), Address: c.config().Tunnel.Address, NBMA: c.nbma}
	if err := c.snapshot(ctx, func() { d.Peers = c.peerRows() }); err != nil {
		return d, err
	}
	nhs, err := c.NHS(ctx)
	if err != nil {
		return d, err
	}
	d.NHS = nhs
	return d, nil
}

// peerRows derives the show dmvpn rows. Loop only.
func (c *Controller) peerRows() []api.Peer {
	viaShortcut := map[netip.Addr]bool{}
	for _, s := range c.eng.Shortcuts() {
		if s.State == engine.ShortcutUp {
			viaShortcut[s.Via] = true
		}
	}
	var out []api.Peer
	for _, e := range c.eng.Cache() {
		state, ok := peerState(e, c.protectedNow)
		if !ok {
			continue
		}
		nbma := e.Claimed
		if !nbma.IsValid() {
			nbma = e.NBMA
		}
		p := api.Peer{NBMA: nbma, ObservedNBMA: e.Observed, Tunnel: e.Proto, State: state, Since: e.Since, Entries: 1,
			Group: e.Group}
		if e.Kind == engine.KindNHS {
			p.Attrs = append(p.Attrs, api.AttrStatic)
		} else {
			p.Attrs = append(p.Attrs, api.AttrDynamic)
		}
		if e.Observed.IsValid() {
			p.Attrs = append(p.Attrs, api.AttrNAT)
		}
		if viaShortcut[e.Proto] {
			p.Attrs = append(p.Attrs, api.AttrRouteInstalled)
		}
		out = append(out, p)
	}
	return out
}

// IPsec lists the SA state of every wanted peer, with its SAs' details
// from a fresh listing.
func (c *Controller) IPsec(ctx context.Context) ([]api.SA, error) {
	if c.deps.IPsec == nil {
		return nil, api.ErrNotEnabled
	}
	st := c.ipsecState(ctx)
	out := make([]api.SA, 0, len(st.Peers))
	for _, p := range st.Peers {
		out = append(out, c.apiSA(p))
	}
	return out, nil
}

// BGP is the show bgp summary view.
func (c *Controller) BGP(ctx context.Context) (api.BGPSummary, error) {
	var bgp BGP
	if err := c.snapshot(ctx, func() { bgp = c.bgp }); err != nil {
		return api.BGPSummary{}, err
	}
	if bgp == nil {
		return api.BGPSummary{}, api.ErrNotEnabled
	}
	sum, err := bgp.Summary(ctx)
	if err != nil {
		return api.BGPSummary{}, err
	}
	out := api.BGPSummary{Enabled: true, RouterID: c.config().BGP.RouterID, AS: c.config().BGP.ASN}
	now := c.deps.Clock.Now()
	for _, n := range sum {
		out.Neighbors = append(out.Neighbors, apiBGPNeighbor(n, now))
	}
	return out, nil
}

func apiBGPNeighbor(n routing.NeighborSummary, now time.Time) api.BGPNeighbor {
	bn := api.BGPNeighbor{Address: n.Neighbor, AS: n.AS, State: bgpState(n.State),
		Received: int(n.PrefixesReceived), Accepted: int(n.PrefixesAccepted), Rejected: int(n.PrefixesRejected),
		Dynamic: n.PeerGroup != "", LastDown: n.LastDownReason, MaxPrefixTeardowns: n.MaxPrefixTeardowns}
	if n.Uptime > 0 {
		bn.Since = now.Add(-n.Uptime)
	}
	return bn
}

// bgpStateNames are the names dmvpnctl shows for routing's lower-case
// states whose name is not just capitalised.
var bgpStateNames = map[routing.NeighborState]string{
	routing.StateOpenSent:    "OpenSent",
	routing.StateOpenConfirm: "OpenConfirm",
	"":                       "Unknown",
}

// bgpState maps routing's lower-case states to the names dmvpnctl shows.
func bgpState(s routing.NeighborState) string {
	if n, ok := bgpStateNames[s]; ok {
		return n
	}
	return strings.ToUpper(string(s[:1])) + string(s[1:])
}

// ClearCache drops the dynamic NHRP entries learnt from resolutions (and
// with them their shortcuts) and the negative entries; NHS entries and a
// hub's registrations stay, since only their owners can refresh them.
func (c *Controller) ClearCache(ctx context.Context) (int, error) {
	n := 0
	err := c.snapshot(ctx, func() { n = c.eng.ClearCache() })
	return n, err
}

// ClearShortcuts removes every shortcut; their routes go in the next
// reconcile and traffic falls back to the hub path until the next redirect.
func (c *Controller) ClearShortcuts(ctx context.Context) (int, error) {
	n := 0
	err := c.snapshot(ctx, func() { n = c.eng.ClearShortcuts() })
	return n, err
}
