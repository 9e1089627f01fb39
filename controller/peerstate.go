package controller

import (
	"net/netip"

	"github.com/dmvpnd/dmvpnd/controller/api"
	"github.com/dmvpnd/dmvpnd/nhrp/engine"
)

// peerState is a cache entry's peer state, the one derivation both
// `show dmvpn` (DMVPN) and the dmvpnd_peers gauge use. Negative entries are
// not peers (ok false).
//
//   - NHRP: no direct NBMA address yet (resolution or registration pending);
//   - IKE: an NBMA address, but with IPsec on no established SA to it;
//   - UP: an NBMA address and, with IPsec on, an SA protecting it.
//
// protected is the engine's own proof (engine.Proven): the same input
// that decides whether NHRP may be sent to or accepted from the address,
// so the view never claims UP for a peer NHRP refuses.
func peerState(e engine.CacheEntry, protected func(netip.Addr) bool) (api.PeerState, bool) {
	switch {
	case e.Kind == engine.KindNegative:
		return "", false
	case !e.NBMA.IsValid():
		return api.PeerNHRP, true
	case !protected(e.NBMA):
		return api.PeerIKE, true
	}
	return api.PeerUp, true
}

// protectedNow reports whether exactly one established SA proves nbma, as
// the engine last learnt it (a snapshot does not sync the protections: it
// must not change state). Always true with IPsec off. Loop only.
func (c *Controller) protectedNow(nbma netip.Addr) bool {
	return c.eng.Proven(nbma)
}
