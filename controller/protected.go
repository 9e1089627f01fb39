package controller

import (
	"net/netip"

	"github.com/dmvpnd/dmvpnd/ipsec"
)

// kickProtected tells the engine when an SA to a peer comes up, so that a
// registration dropped while the SA was negotiated (nhrp_send_no_sa) goes
// out now rather than at its next backed-off retransmission (up to 64 s).
// Call it after refreshTrusted, so that the resent packet passes WriteTo.
func (c *Controller) kickProtected(ev ipsec.Event) {
	if ev.Status != ipsec.StatusUp || c.eng == nil {
		return
	}
	a, err := netip.ParseAddr(ev.Peer) // peers are named by their claimed NBMA
	if err != nil || !c.trusted[a] {
		return
	}
	c.eng.Protected(a)
}
