package controller

import (
	"strings"

	"github.com/dmvpnd/dmvpnd/nhrp"
	"github.com/dmvpnd/dmvpnd/nhrp/engine"
)

// handlePacket gives one received packet to the engine and, for the
// replies to what this node sent, counts the outcome the engine does not
// count itself: registrations sent (success, failure) and resolutions sent
// (success, failure). A reply the engine dropped (unmatched, unprotected,
// malformed, ...) counts as nothing. Loop only.
func (c *Controller) handlePacket(p packet) {
	t, _ := nhrp.PeekType(p.b)
	watch := t == nhrp.TypeRegistrationReply || t == nhrp.TypeResolutionReply
	var drops uint64
	if watch {
		drops = dropTotal(c.eng.Counters())
	}
	c.eng.HandlePacketReceived(p.from, p.b, p.at)
	if !watch || dropTotal(c.eng.Counters()) != drops {
		return
	}
	pkt, err := nhrp.Parse(p.b)
	if err != nil || len(pkt.CIEs) == 0 {
		return
	}
	ok := pkt.CIEs[0].Code == nhrp.CIESuccess
	switch t {
	case nhrp.TypeRegistrationReply:
		if ok {
			c.noteRegistered()
		} else {
			c.countRegistration("failure")
		}
	case nhrp.TypeResolutionReply:
		if pkt.SrcProto != c.config().Tunnel.Address.Addr() {
			return // forwarded on behalf of another node
		}
		result := "failure"
		if ok {
			result = "success"
		}
		if m := c.deps.Metrics; m != nil {
			m.Resolutions.WithLabelValues("sent", result).Inc()
		}
	}
}

// noteRegistered finds the NHSs whose registration was just renewed (a
// later expiry than last seen) and records the success. Loop only.
func (c *Controller) noteRegistered() {
	now := c.deps.Clock.Now()
	for _, n := range c.eng.NHSs() {
		if n.State != engine.NHSUp || n.Expires.Equal(c.nhsExpires[n.NBMA]) {
			continue
		}
		c.nhsExpires[n.NBMA] = n.Expires
		c.lastReg[n.NBMA] = now
		c.countRegistration("success")
	}
}

// noteNHSEvent counts a registration that timed out: the engine reports
// the NHS as not answering ("no reply to N registration requests").
func (c *Controller) noteNHSEvent(ev engine.Event) {
	if ev.NHS != engine.NHSUp {
		delete(c.nhsExpires, ev.NBMA)
	}
	if ev.NHS == engine.NHSProbing && strings.HasPrefix(ev.Reason, "no reply") {
		c.countRegistration("timeout")
	}
}

func (c *Controller) countRegistration(result string) {
	if m := c.deps.Metrics; m != nil {
		m.Registrations.WithLabelValues("sent", result).Inc()
	}
}

// dropTotal sums the engine's drop counters.
func dropTotal(counters map[string]uint64) uint64 {
	var n uint64
	for name, v := range counters {
		if _, ok := dropReason(name); ok {
			n += v
		}
	}
	return n
}
