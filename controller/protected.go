package controller

import (
	"maps"
	"net/netip"
	"slices"

	"github.com/dmvpnd/dmvpnd/ipsec"
)

// kickProtected tells the engine about every NBMA address that became
// protected, so that what it sent there while the SA was negotiated and
// WriteTo dropped (nhrp_send_no_sa) goes out now rather than at its next
// backed-off retry: a spoke's registration (backoff up to 64 s), a
// shortcut's direct-path probe (retried after 4 s or more). Call it after
// refreshTrusted, so that the resent packets pass WriteTo.
//
// The new addresses are c.trusted minus those reported before, not minus
// c.trusted before refreshTrusted: isTrusted refreshes c.trusted itself
// when the engine sends to an address it does not trust yet, which can
// pick up an SA before its event arrives. An SA's addresses are its peer's
// remote and claimed NBMA (they differ behind NAT); the engine acts on
// the one it sends to. An Up event for an address reported before (its
// Down event was lost: the ipsec manager drops events for a slow reader)
// reports it again; that is harmless, as the engine sends at most one
// packet per NHS or peer for each call and nothing to a registered NHS or
// a confirmed direct path.
func (c *Controller) kickProtected(ev ipsec.Event) {
	var kick []netip.Addr
	for a := range c.trusted {
		if !c.reported[a] {
			kick = append(kick, a)
		}
	}
	if ev.Status == ipsec.StatusUp {
		// Peers are named by their claimed NBMA.
		if a, err := netip.ParseAddr(ev.Peer); err == nil && c.trusted[a] && c.reported[a] {
			kick = append(kick, a)
		}
	}
	c.reported = maps.Clone(c.trusted)
	if c.eng == nil {
		return
	}
	slices.SortFunc(kick, netip.Addr.Compare)
	for _, a := range kick {
		c.eng.Protected(a)
	}
}
