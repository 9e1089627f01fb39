package controller

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"

	"github.com/dmvpnd/dmvpnd/controller/api"
	"github.com/dmvpnd/dmvpnd/ipsec"
	"github.com/dmvpnd/dmvpnd/nhrp/engine"
	"github.com/dmvpnd/dmvpnd/routing"
)

// peerMatches reports whether addr names the peer of a show dmvpn row:
// its tunnel, NBMA or observed (post-NAT) NBMA address. The zero address
// matches every peer.
func peerMatches(p api.Peer, addr netip.Addr) bool {
	return !addr.IsValid() || p.Tunnel == addr || p.NBMA == addr || p.ObservedNBMA == addr
}

// entryMatches is peerMatches for an engine cache entry.
func entryMatches(e engine.CacheEntry, addr netip.Addr) bool {
	return e.Kind != engine.KindNegative &&
		(e.Proto == addr || e.NBMA == addr || e.Claimed == addr || e.Observed == addr)
}

// PeerDetails is "show dmvpn peer ADDR" (every peer for the zero address:
// "show dmvpn detail"): each peer's row with its cache entries, neighbor
// entry, routes, SA and BGP session.
func (c *Controller) PeerDetails(ctx context.Context, addr netip.Addr) ([]api.PeerDetail, error) {
	var (
		rows      []api.Peer
		entries   []engine.CacheEntry
		scs       []engine.ShortcutStatus
		bgpRoutes []routing.Route
		bgp       BGP
	)
	err := c.snapshot(ctx, func() {
		rows, entries, scs = c.peerRows(), c.eng.Cache(), c.eng.Shortcuts()
		bgpRoutes, bgp = slices.Clone(c.bgpRoutes), c.bgp
	})
	if err != nil {
		return nil, err
	}
	var out []api.PeerDetail
	for _, r := range rows {
		if peerMatches(r, addr) {
			out = append(out, api.PeerDetail{Peer: r, Cache: []api.CacheEntry{}, Routes: []api.Route{}})
		}
	}
	if len(out) == 0 {
		if addr.IsValid() {
			return nil, fmt.Errorf("no peer %s: %w", addr, api.ErrNotFound)
		}
		return out, nil
	}
	nhss, err := c.NHS(ctx)
	if err != nil {
		return nil, err
	}
	var st ipsec.State
	if c.deps.IPsec != nil {
		st = c.ipsecState(ctx)
	}
	var sum []routing.NeighborSummary
	if bgp != nil {
		sum, _ = bgp.Summary(ctx) // a failing speaker leaves the section out
	}
	now := c.deps.Clock.Now()
	for i := range out {
		d := &out[i]
		for _, e := range entries {
			if e.Proto != d.Tunnel || e.Kind == engine.KindNegative {
				continue
			}
			d.Cache = append(d.Cache, apiCacheEntry(e))
			if e.Path != "" {
				d.Path = e.Path
			}
			if e.Bound.IsValid() {
				d.Neighbor = &api.Neighbor{Tunnel: e.Proto, NBMA: e.Bound}
			}
		}
		for _, n := range nhss {
			if n.NBMA == d.NBMA {
				d.NHS = &n
			}
		}
		for _, s := range scs {
			if s.Via == d.Tunnel && s.State == engine.ShortcutUp {
				d.Routes = append(d.Routes, api.Route{Prefix: s.Prefix, Via: s.Via, Source: api.RouteShortcut,
					Metric: shortcutMetric, Expires: s.Expires})
			}
		}
		for _, r := range bgpRoutes {
			if r.Via == d.Tunnel {
				d.Routes = append(d.Routes, api.Route{Prefix: r.Prefix, Via: r.Via, Source: api.RouteBGP, Metric: r.Metric})
			}
		}
		for _, p := range st.Peers {
			if p.RemoteNBMA == d.NBMA || p.ClaimedNBMA == d.NBMA {
				sa := c.apiSA(p)
				d.SA = &sa
			}
		}
		for _, n := range sum {
			if n.Neighbor == d.Tunnel {
				bn := apiBGPNeighbor(n, now)
				d.BGP = &bn
			}
		}
	}
	return out, nil
}

// ClearPeer is "clear dmvpn peer ADDR": on a hub it drops the peer's
// registration, on a spoke its resolved entry with the shortcuts through
// it; the IPsec peer goes with the NHRP peer (its SAs are deleted). An
// NHS is kept: this node's own registration refreshes it. The result says
// what happened.
func (c *Controller) ClearPeer(ctx context.Context, addr netip.Addr) (api.PeerClear, error) {
	var res api.PeerClear
	found := false
	err := c.snapshot(ctx, func() {
		before := maps.Clone(c.peers)
		for _, e := range c.eng.Cache() {
			if !entryMatches(e, addr) {
				continue
			}
			found = true
			switch e.Kind {
			case engine.KindRegistered:
				if c.eng.ClearRegistration(e.Proto) {
					res.Registrations++
					res.Actions = append(res.Actions, "cleared the registration of "+e.Proto.String())
				}
			case engine.KindResolved, engine.KindRequester:
				if ok, n := c.eng.ClearResolved(e.Proto); ok {
					res.Resolved++
					res.Shortcuts += n
					res.Actions = append(res.Actions, fmt.Sprintf("cleared the resolved entry of %s with %d shortcut(s)", e.Proto, n))
				}
			case engine.KindNHS:
				res.Actions = append(res.Actions, "kept NHS "+e.Proto.String()+": this node's registration with it refreshes it")
			}
		}
		// The engine reports its events synchronously: the IPsec peers
		// of the cleared NHRP peers are gone from c.peers already.
		for nbma := range before {
			if _, still := c.peers[nbma]; !still {
				res.Released = append(res.Released, nbma)
			}
		}
	})
	if err != nil {
		return res, err
	}
	if !found {
		return res, fmt.Errorf("no peer %s: %w", addr, api.ErrNotFound)
	}
	slices.SortFunc(res.Released, netip.Addr.Compare)
	for _, a := range res.Released {
		res.Actions = append(res.Actions, "released IPsec peer "+a.String()+": its SAs are deleted")
	}
	return res, nil
}

// ClearRegistration is "clear nhrp registration ADDR" on a hub: the
// client's registration at that tunnel or NBMA address goes, with its
// neighbor entry, routes and IPsec peer; the client registers again at its
// next refresh.
func (c *Controller) ClearRegistration(ctx context.Context, addr netip.Addr) (int, error) {
	n := 0
	err := c.snapshot(ctx, func() {
		for _, e := range c.eng.Cache() {
			if e.Kind == engine.KindRegistered && entryMatches(e, addr) && c.eng.ClearRegistration(e.Proto) {
				n++
			}
		}
	})
	if err == nil && n == 0 {
		return 0, fmt.Errorf("no registration from %s: %w", addr, api.ErrNotFound)
	}
	return n, err
}
