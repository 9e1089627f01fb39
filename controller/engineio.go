package controller

import (
	"net/netip"

	"go.uber.org/zap"

	"github.com/dmvpnd/dmvpnd/kernel"
	"github.com/dmvpnd/dmvpnd/nhrp/engine"
)

// engineConn sends the engine's packets through the tunnel's packet socket.
// With IPsec the engine itself sends nothing to an NBMA no SA proves.
type engineConn struct{ c *Controller }

func (e engineConn) WriteTo(b []byte, nbma netip.Addr) error {
	if e.c.bio.queue {
		e.c.queueSend(b, nbma)
		e.c.countPacket(b, true)
		return nil
	}
	_, err := e.c.conn.WriteTo(b, nbma)
	if err != nil {
		e.c.stats.inc("nhrp_send_errors")
		return err
	}
	e.c.countPacket(b, true)
	return nil
}

// engineRouter answers route lookups from the kernel's routing table.
type engineRouter struct{ c *Controller }

func (r engineRouter) Lookup(dst netip.Addr) (engine.Route, bool) {
	if r.c.deps.Lookup == nil {
		return engine.Route{}, false
	}
	m, ok, err := r.c.deps.Lookup.LookupRoute(dst)
	if err != nil {
		r.c.log.Warn("route lookup", zap.Stringer("dst", dst), zap.Error(err))
		return engine.Route{}, false
	}
	if !ok {
		return engine.Route{}, false
	}
	return engine.Route{Prefix: m.Prefix, ViaTunnel: m.Ifindex == r.c.ifindex, NextHop: m.Gateway}, true
}

// engineBinder programs neighbor entries. Inside a batch of packets
// (batchio.go) registrations' entries and removals are queued and written
// in one transaction when the batch is done. Entries the engine refreshes
// itself (registrations, NHSs) are permanent so they never age; resolved
// peers are written REACHABLE so that the kernel reports continued use with
// a probe (a miss in state PROBE), which the engine takes as "used".
type engineBinder struct{ c *Controller }

func (b engineBinder) Bind(bd engine.Binding) error {
	permanent := bd.Kind.Permanent()
	if bd.Kind == engine.KindRegistered && b.c.bio.deferBinds {
		// Written with the rest of the batch; the engine holds the reply.
		b.c.queueNeighbor(kernel.NeighborOp{Addr: bd.Proto, NBMA: bd.NBMA, Permanent: permanent}, true)
		return engine.ErrBindDeferred
	}
	// Anything queued goes first: the kernel sees the engine's order.
	b.c.flushNeighbors()
	if err := b.c.deps.Dataplane.ReplaceNeighbor(bd.Proto, bd.NBMA, permanent); err != nil {
		b.c.stats.inc("kernel_neighbor_errors")
		b.c.log.Warn("programming neighbor", zap.Stringer("proto", bd.Proto), zap.Stringer("nbma", bd.NBMA), zap.Error(err))
		return err
	}
	return nil
}

func (b engineBinder) Unbind(bd engine.Binding) {
	if _, ok := b.c.batcher(); ok && b.c.bio.queue {
		b.c.queueNeighbor(kernel.NeighborOp{Addr: bd.Proto, Delete: true}, false)
		return
	}
	if err := b.c.deps.Dataplane.DeleteNeighbor(bd.Proto); err != nil {
		b.c.stats.inc("kernel_neighbor_errors")
		b.c.log.Warn("removing neighbor", zap.Stringer("proto", bd.Proto), zap.Error(err))
	}
}

// eventStatNames are the counters of engine events by kind
// ("nhrp_event_peer-up"), made once rather than per event.
var eventStatNames = func() (names [256]string) {
	for k := range names {
		names[k] = "nhrp_event_" + engine.EventKind(k).String()
	}
	return names
}()

// onEngineEvent turns engine events into desired state. It runs on the loop
// goroutine, inside an engine call, and must not call back into the engine.
func (c *Controller) onEngineEvent(ev engine.Event) {
	// Check first: the field would box the event (an allocation per
	// registration in a burst) even with debug off.
	if ce := c.log.Check(zap.DebugLevel, "nhrp event"); ce != nil {
		ce.Write(zap.Stringer("event", ev))
	}
	c.stats.inc(eventStatNames[ev.Kind])
	if oe, ok := engineEvent(ev); ok {
		c.event(oe)
	}
	c.mcast.dirty = true       // bindings, peers and NHSs are what multicast goes to
	c.peerCounts.valid = false // counted again for the metrics
	switch {
	case ev.Kind == engine.EventGroup,
		(ev.Kind == engine.EventPeerUp || ev.Kind == engine.EventPeerDown) && ev.Group != "":
		// Peers with a group are what QoS applies to: a peer without one
		// changes nothing (a burst of 10k of them, no walk per batch).
		c.dirty.qos = true
	}
	switch ev.Kind {
	case engine.EventPeerUp:
		c.dirty.bind = true
		c.nhrpView.notePeer(ev)
		c.wantPeer(ev)
	case engine.EventPeerDown:
		c.dirty.bind = true
		c.nhrpView.notePeer(ev)
		c.unwantPeer(ev)
	case engine.EventShortcut:
		if ev.Shortcut == engine.ShortcutUp {
			if _, had := c.shortcuts[ev.Prefix]; !had && c.deps.Metrics != nil {
				c.deps.Metrics.ShortcutsInstalled.Inc()
			}
			c.shortcuts[ev.Prefix] = ev.Via
		} else {
			delete(c.shortcuts, ev.Prefix)
		}
		c.dirty.routes = true
	case engine.EventNHS:
		// Every step (sent, registered, standby), for debugging; the
		// operator event above reports only registration and failure.
		c.log.Debug("nhs state", zap.Stringer("nbma", ev.NBMA), zap.Stringer("proto", ev.Proto),
			zap.Stringer("state", ev.NHS), zap.String("reason", ev.Reason))
		c.noteNHSEvent(ev)
	}
}
