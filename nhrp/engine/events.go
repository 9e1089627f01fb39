package engine

import (
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// EventKind says what an Event reports.
type EventKind uint8

// Event kinds.
const (
	// EventPeerUp: a peer became known with a direct NBMA address (a
	// registered client on an NHS, an NHS on a client, a resolved peer, or
	// the source of a resolution request we answered).
	// The controller starts IPsec towards it (claimed = identity / inner
	// selector, observed = outer address).
	EventPeerUp EventKind = iota + 1
	// EventPeerDown: the peer is gone (Reason says why).
	EventPeerDown
	// EventBindingAdded / EventBindingRemoved: a neighbor entry
	// Proto -> NBMA was programmed through the Binder / removed.
	EventBindingAdded
	EventBindingRemoved
	// EventShortcut: a shortcut changed state. Install "Prefix via Via"
	// only while State is ShortcutUp.
	EventShortcut
	// EventNHS: an NHS changed state.
	EventNHS
	// EventRefused: a registration CIE (or a reply) was refused. Proto is
	// the address asked for, NBMA the address the packet came from (the
	// one its SA proves, with IPsec), Claimed the NBMA it claimed, Drop
	// why. Nothing else changed.
	EventRefused
	// EventGroup: the NHRP group of a peer already reported up changed
	// (Group, "" for none). EventPeerUp carries the group a peer comes up
	// with.
	EventGroup
)

func (k EventKind) String() string {
	switch k {
	case EventPeerUp:
		return "peer-up"
	case EventPeerDown:
		return "peer-down"
	case EventBindingAdded:
		return "binding-added"
	case EventBindingRemoved:
		return "binding-removed"
	case EventShortcut:
		return "shortcut"
	case EventNHS:
		return "nhs"
	case EventRefused:
		return "refused"
	case EventGroup:
		return "group"
	}
	return fmt.Sprintf("event-%d", k)
}

// Event is one notification to the controller. Fields not relevant to the
// Kind are zero.
type Event struct {
	Kind EventKind
	Time time.Time
	// Proto is the peer's (or NHS's) protocol address.
	Proto netip.Addr
	// NBMA is the GRE destination used for the peer; Claimed the NBMA the
	// peer announced; Observed the post-NAT address seen (zero when no NAT
	// is involved).
	NBMA, Claimed, Observed netip.Addr
	// Kind of the binding (EventBinding*).
	Binding BindingKind
	// Prefix and Via of a shortcut, and its state.
	Prefix   netip.Prefix
	Via      netip.Addr
	Shortcut ShortcutState
	// NHS state.
	NHS NHSState
	// Drop is why a request was refused (EventRefused).
	Drop DropReason
	// Group is the peer's NHRP group (EventPeerUp, EventGroup; the group
	// it had for EventPeerDown).
	Group string
	// Reason is a short human-readable cause.
	Reason string
}

// String renders an event compactly (for logs and tests).
func (e Event) String() string {
	var b strings.Builder
	b.WriteString(e.Kind.String())
	add := func(k string, v any) { fmt.Fprintf(&b, " %s=%v", k, v) }
	if e.Proto.IsValid() {
		add("proto", e.Proto)
	}
	if e.NBMA.IsValid() {
		add("nbma", e.NBMA)
	}
	if e.Claimed.IsValid() && e.Claimed != e.NBMA {
		add("claimed", e.Claimed)
	}
	if e.Observed.IsValid() {
		add("observed", e.Observed)
	}
	if e.Binding != 0 {
		add("kind", e.Binding)
	}
	if e.Prefix.IsValid() {
		add("prefix", e.Prefix)
		add("via", e.Via)
		add("state", e.Shortcut)
	}
	if e.Kind == EventNHS {
		add("state", e.NHS)
	}
	if e.Group != "" {
		add("group", e.Group)
	}
	if e.Reason != "" {
		fmt.Fprintf(&b, " reason=%q", e.Reason)
	}
	return b.String()
}

func (e *Engine) emit(ev Event) {
	ev.Time = e.now
	if e.cfg.Events != nil {
		e.cfg.Events(ev)
	}
}
