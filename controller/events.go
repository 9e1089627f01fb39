package controller

import (
	"net/netip"
	"sort"
	"strings"

	"go.uber.org/zap"

	"github.com/dmvpnd/dmvpnd/controller/api"
	"github.com/dmvpnd/dmvpnd/ipsec"
	"github.com/dmvpnd/dmvpnd/nhrp/engine"
	"github.com/dmvpnd/dmvpnd/routing"
)

// Event stream sizes: what a slow dmvpnctl monitor may lag behind before it
// loses events, and how many the tech-support bundle gets.
const (
	eventBuffer = 256
	eventKeep   = 500
)

var _ api.EventSource = (*Controller)(nil)

// Log field keys of events (constant, so that log queries can rely on them).
const (
	keyEvent      = "event"
	keyPeerTunnel = "peer_tunnel"
	keyNBMA       = "nbma"
	keyPrefix     = "prefix"
	keyState      = "state"
	keyReason     = "reason"
	keyCount      = "count"
)

// event logs ev at its level with structured fields and hands it to the
// subscribers. Safe from any goroutine; never blocks (on anything but
// another event being emitted). Events are stamped and published under one
// lock: subscribers and the log see them in the order of their times.
func (c *Controller) event(ev api.Event) {
	c.eventMu.Lock()
	defer c.eventMu.Unlock()
	ev.Time = c.deps.Clock.Now()
	if ev.Level == "" {
		ev.Level = "info"
	}
	lvl := zap.InfoLevel
	if ev.Level == "warn" {
		lvl = zap.WarnLevel
	}
	// The message and fields are built only for a level the logger
	// writes: a hub logging at warn takes 10k peer-up events in a burst.
	if c.log.Level().Enabled(lvl) {
		if ce := c.log.Check(lvl, strings.ReplaceAll(string(ev.Kind), "-", " ")); ce != nil {
			ce.Write(eventFields(ev)...)
		}
	}
	c.events.Publish(ev)
}

// eventFields are the log fields of an operator event.
func eventFields(ev api.Event) []zap.Field {
	fields := []zap.Field{zap.String(keyEvent, string(ev.Kind))}
	if ev.PeerTunnel.IsValid() {
		fields = append(fields, zap.Stringer(keyPeerTunnel, ev.PeerTunnel))
	}
	if ev.NBMA.IsValid() {
		fields = append(fields, zap.Stringer(keyNBMA, ev.NBMA))
	}
	if ev.Prefix.IsValid() {
		fields = append(fields, zap.Stringer(keyPrefix, ev.Prefix))
	}
	if ev.State != "" {
		fields = append(fields, zap.String(keyState, ev.State))
	}
	if ev.Reason != "" {
		fields = append(fields, zap.String(keyReason, ev.Reason))
	}
	if ev.Count != 0 {
		fields = append(fields, zap.Uint64(keyCount, ev.Count))
	}
	return fields
}

// Subscribe implements api.EventSource.
func (c *Controller) Subscribe() *api.Subscription { return c.events.Subscribe() }

// RecentEvents implements api.EventSource.
func (c *Controller) RecentEvents() []api.Event { return c.events.RecentEvents() }

// engineEvent turns an engine event into an operator event (ok false: not
// one an operator follows, e.g. a neighbor entry programmed).
func engineEvent(ev engine.Event) (api.Event, bool) {
	nbma := ev.Claimed
	if !nbma.IsValid() {
		nbma = ev.NBMA
	}
	out := api.Event{PeerTunnel: ev.Proto, NBMA: nbma, Reason: ev.Reason}
	switch ev.Kind {
	case engine.EventPeerUp:
		switch ev.Binding {
		case engine.KindNHS:
			return out, false // the NHS event reports it
		case engine.KindRegistered:
			out.Kind = api.EventRegistration
		default:
			out.Kind = api.EventPeerUp
		}
	case engine.EventPeerDown:
		switch {
		case ev.Binding == engine.KindNHS && strings.HasPrefix(ev.Reason, "nhs "):
			return out, false // the NHS event reports it
		case ev.Reason == "expired":
			out.Kind = api.EventExpiry
		case strings.HasPrefix(ev.Reason, "purged"):
			out.Kind = api.EventPurge
		default:
			out.Kind = api.EventPeerDown
		}
	case engine.EventShortcut:
		out.PeerTunnel, out.NBMA, out.Prefix, out.State = ev.Via, ev.NBMA, ev.Prefix, ev.Shortcut.String()
		switch ev.Shortcut {
		case engine.ShortcutUp:
			out.Kind = api.EventShortcutUp
		case engine.ShortcutValidating:
			return out, false // the direct path is being proven: not up yet
		default:
			out.Kind = api.EventShortcutDown
		}
	case engine.EventNHS:
		out.NBMA, out.State = ev.NBMA, ev.NHS.String()
		switch {
		case ev.NHS == engine.NHSUp:
			out.Kind = api.EventRegistration
		case strings.HasPrefix(ev.Reason, "no reply") || strings.HasPrefix(ev.Reason, "registration refused"):
			out.Kind, out.Level = api.EventRegistrationFailed, "warn"
		default:
			return out, false // registration sent, standby: progress, not news
		}
	default:
		return out, false
	}
	return out, true
}

// ipsecEvent turns an IPsec peer event into an operator event; lost says
// the event ends an established SA (sa-down even when it is connecting
// again).
func ipsecEvent(ev ipsec.Event, lost bool) (api.Event, bool) {
	out := api.Event{State: ev.Status.String(), Reason: ev.Reason}
	if a, err := netip.ParseAddr(ev.Peer); err == nil {
		out.NBMA = a
	}
	switch {
	case ev.Status == ipsec.StatusUp:
		out.Kind = api.EventSAUp
	case ev.Status == ipsec.StatusDown || lost:
		out.Kind, out.Level = api.EventSADown, "warn"
		if ev.Reason == ipsec.ReasonPeerRemoved {
			out.Level = "info"
		}
	default:
		return out, false
	}
	return out, true
}

// bgpEvents compares two BGP summaries and reports each session whose
// state changed (a new session counts as a change from nothing).
func bgpEvents(prev map[netip.Addr]routing.NeighborState, sum []routing.NeighborSummary) ([]api.Event, map[netip.Addr]routing.NeighborState) {
	cur := map[netip.Addr]routing.NeighborState{}
	var out []api.Event
	for _, n := range sum {
		cur[n.Neighbor] = n.State
		if old, ok := prev[n.Neighbor]; !ok || old != n.State {
			ev := api.Event{Kind: api.EventBGPSession, PeerTunnel: n.Neighbor, State: bgpState(n.State)}
			if ok {
				ev.Reason = "was " + bgpState(old)
			}
			if n.State != routing.StateEstablished {
				ev.Level = "warn"
			}
			out = append(out, ev)
		}
	}
	for a, old := range prev {
		if _, ok := cur[a]; !ok {
			out = append(out, api.Event{Kind: api.EventBGPSession, PeerTunnel: a, State: "Removed",
				Reason: "was " + bgpState(old), Level: "warn"})
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].PeerTunnel.Less(out[j].PeerTunnel) })
	return out, cur
}

// refusalEvents reports the growth of the engine's drop and refusal
// counters, one event per reason.
func refusalEvents(deltas map[string]uint64) []api.Event {
	var out []api.Event
	for name, d := range deltas {
		reason, ok := dropReason(name)
		if name == "registrations_refused" {
			reason, ok = "registration_refused", true
		}
		if ok {
			out = append(out, api.Event{Kind: api.EventRefusal, Level: "warn", Reason: reason, Count: d})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Reason < out[j].Reason })
	return out
}
