package controller

import (
	"context"
	"iter"
	"net/netip"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/dmvpnd/dmvpnd/nhrp/engine"
)

// bgpViewInterval bounds how often the BGP speaker is told about NHRP
// changes: a burst of registrations costs one update per interval.
const bgpViewInterval = time.Second

// nhrpView is what the BGP speaker must know about NHRP, derived from the
// engine's cache when it is copied:
//   - registered: the tunnel addresses registered with this hub, from which
//     alone bgp.dynamic.require_registration accepts a BGP session;
//   - nbmas: every NBMA address NHRP learnt (GRE destination, claimed and
//     observed addresses of each peer), which no BGP route may cover (a
//     route for an underlay address through the tunnel would carry the
//     tunnel inside itself).
//
// version counts the engine's peer events; the publisher goroutine
// (bgpViewLoop) copies the view when it moved, at most once per
// bgpViewInterval, and applies it off the loop. The view keeps nothing
// per peer: the engine's cache is the one record of them.
type nhrpView struct {
	version uint64
}

// notePeer counts an engine peer event. Loop only.
func (v *nhrpView) notePeer(ev engine.Event) {
	if ev.Kind == engine.EventPeerUp || ev.Kind == engine.EventPeerDown {
		v.version++
	}
}

// copyOut returns the registered addresses and the NBMA host prefixes of
// the peers (entries with a direct NBMA address, as EventPeerUp reports
// them), sorted. Loop only.
func (v *nhrpView) copyOut(peers iter.Seq[engine.CacheEntry]) (registered []netip.Addr, nbmas []netip.Prefix) {
	seen := map[netip.Addr]bool{}
	for e := range peers {
		if !e.NBMA.IsValid() {
			continue
		}
		if e.Kind == engine.KindRegistered {
			registered = append(registered, e.Proto)
		}
		for _, a := range []netip.Addr{e.NBMA, e.Claimed, e.Observed} {
			if a.IsValid() && !seen[a] {
				seen[a] = true
				nbmas = append(nbmas, netip.PrefixFrom(a, a.BitLen()))
			}
		}
	}
	slices.SortFunc(registered, netip.Addr.Compare)
	slices.SortFunc(nbmas, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	return registered, nbmas
}

// bgpViewLoop hands the BGP speaker the NHRP view whenever it changed, at
// most once per bgpViewInterval, until ctx ends. It runs on its own
// goroutine: only the copy runs on the loop (a snapshot request), the
// speaker's calls (SetProtected re-applies the import policy) do not.
func (c *Controller) bgpViewLoop(ctx context.Context, bgp BGP) {
	t := time.NewTicker(bgpViewInterval)
	defer t.Stop()
	var applied uint64
	known := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var (
			version    uint64
			registered []netip.Addr
			nbmas      []netip.Prefix
		)
		if err := c.snapshot(ctx, func() {
			version = c.nhrpView.version
			if !known || version != applied {
				registered, nbmas = c.nhrpView.copyOut(c.eng.Peers())
			}
		}); err != nil {
			continue
		}
		if known && version == applied {
			continue
		}
		bgp.SetRegistered(registered)
		callCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := bgp.SetProtected(callCtx, nbmas)
		cancel()
		if err != nil {
			c.log.Warn("telling BGP the NBMA addresses learnt from NHRP", zap.Error(err))
			continue // retried at the next tick
		}
		applied, known = version, true
	}
}
