package controller

import (
	"context"
	"maps"
	"net/netip"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/dmvpnd/dmvpnd/nhrp/engine"
)

// bgpViewInterval bounds how often the BGP speaker is told about NHRP
// changes: a burst of registrations costs one update per interval.
const bgpViewInterval = time.Second

// nhrpView is what the BGP speaker must know about NHRP, kept by the loop
// from the engine's peer events:
//   - registered: the tunnel addresses registered with this hub, from which
//     alone bgp.dynamic.require_registration accepts a BGP session;
//   - nbmas: every NBMA address NHRP learnt (GRE destination, claimed and
//     observed addresses of each peer), which no BGP route may cover (a
//     route for an underlay address through the tunnel would carry the
//     tunnel inside itself).
//
// version counts changes; the publisher goroutine (bgpViewLoop) copies the
// view when it moved, at most once per bgpViewInterval, and applies it off
// the loop.
type nhrpView struct {
	registered map[netip.Addr]bool
	nbmas      map[netip.Addr][]netip.Addr // peer tunnel address -> its NBMA addresses
	version    uint64
}

// notePeer updates the view from an engine peer event. Loop only.
func (v *nhrpView) notePeer(ev engine.Event) {
	if v.registered == nil {
		v.registered, v.nbmas = map[netip.Addr]bool{}, map[netip.Addr][]netip.Addr{}
	}
	switch ev.Kind {
	case engine.EventPeerUp:
		var addrs []netip.Addr
		for _, a := range []netip.Addr{ev.NBMA, ev.Claimed, ev.Observed} {
			if a.IsValid() && !slices.Contains(addrs, a) {
				addrs = append(addrs, a)
			}
		}
		v.nbmas[ev.Proto] = addrs
		if ev.Binding == engine.KindRegistered {
			v.registered[ev.Proto] = true
		} else {
			delete(v.registered, ev.Proto)
		}
	case engine.EventPeerDown:
		delete(v.nbmas, ev.Proto)
		delete(v.registered, ev.Proto)
	default:
		return
	}
	v.version++
}

// copyOut returns the registered addresses and the NBMA host prefixes,
// sorted. Loop only.
func (v *nhrpView) copyOut() (registered []netip.Addr, nbmas []netip.Prefix) {
	registered = slices.SortedFunc(maps.Keys(v.registered), netip.Addr.Compare)
	seen := map[netip.Addr]bool{}
	for _, addrs := range v.nbmas {
		for _, a := range addrs {
			if !seen[a] {
				seen[a] = true
				nbmas = append(nbmas, netip.PrefixFrom(a, a.BitLen()))
			}
		}
	}
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
				registered, nbmas = c.nhrpView.copyOut()
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
