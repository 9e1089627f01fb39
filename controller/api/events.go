package api

import (
	"net/netip"
	"sync"
	"time"
)

// EventKind names what an Event reports.
type EventKind string

// Event kinds, in the order of a spoke's life.
const (
	// EventRegistration: a spoke registered with its NHS (on the spoke),
	// or a client registered (on the hub).
	EventRegistration EventKind = "registration"
	// EventRegistrationFailed: an NHS refused or stopped answering.
	EventRegistrationFailed EventKind = "registration-failed"
	// EventPeerUp / EventPeerDown: a resolved peer came or went.
	EventPeerUp   EventKind = "peer-up"
	EventPeerDown EventKind = "peer-down"
	// EventExpiry: a registration or resolution lapsed.
	EventExpiry EventKind = "expiry"
	// EventPurge: an entry was purged by its owner or a peer.
	EventPurge        EventKind = "purge"
	EventShortcutUp   EventKind = "shortcut-up"
	EventShortcutDown EventKind = "shortcut-down"
	EventSAUp         EventKind = "sa-up"
	EventSADown       EventKind = "sa-down"
	// EventBGPSession: a BGP session changed state.
	EventBGPSession EventKind = "bgp-session"
	// EventRefusal: NHRP packets were dropped or registrations refused
	// (Count of them since the previous such event, Reason the engine's
	// drop reason).
	EventRefusal EventKind = "refusal"
	// EventLost is written to a subscriber in place of the Count events
	// it was too slow to take.
	EventLost EventKind = "events-lost"
)

// Event is one thing that happened on the node, as logged and as streamed
// by dmvpnctl monitor.
type Event struct {
	Time time.Time `json:"time"`
	Kind EventKind `json:"kind"`
	// Level is the log level: info, or warn for failures and losses.
	Level      string       `json:"level"`
	PeerTunnel netip.Addr   `json:"peer_tunnel,omitzero"`
	NBMA       netip.Addr   `json:"nbma,omitzero"`
	Prefix     netip.Prefix `json:"prefix,omitzero"`
	State      string       `json:"state,omitempty"`
	Reason     string       `json:"reason,omitempty"`
	Count      uint64       `json:"count,omitempty"`
}

// Concerns reports whether the event is about the peer at a (tunnel or
// NBMA address, or the via of a shortcut).
func (e Event) Concerns(a netip.Addr) bool {
	return e.PeerTunnel == a || e.NBMA == a
}

// EventSource is implemented by a Provider that streams events; the server
// serves /v1/events only then.
type EventSource interface {
	// Subscribe starts a subscription; Close it when done.
	Subscribe() *Subscription
	// RecentEvents returns the last events, oldest first.
	RecentEvents() []Event
}

// Broker fans events out to subscribers without ever blocking the
// publisher: each subscriber has a bounded buffer, and what does not fit is
// counted as lost for it. It keeps the last events for RecentEvents.
type Broker struct {
	mu   sync.Mutex
	subs map[*Subscription]struct{}
	// recent is a ring of the last keep events once full: the oldest at
	// next (a publish overwrites it rather than shifting keep events).
	recent []Event
	next   int
	keep   int
	buf    int
	lost   uint64
}

// NewBroker returns a Broker giving each subscriber buf events of slack and
// remembering the last keep events.
func NewBroker(buf, keep int) *Broker {
	return &Broker{subs: map[*Subscription]struct{}{}, keep: keep, buf: buf}
}

// Subscription is one subscriber's stream.
type Subscription struct {
	b  *Broker
	ch chan Event
	// lost counts events dropped for this subscriber not yet reported.
	lost uint64
}

// Publish hands ev to every subscriber that has room. It never blocks.
func (b *Broker) Publish(ev Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.keep > 0 {
		if len(b.recent) < b.keep {
			b.recent = append(b.recent, ev)
		} else {
			b.recent[b.next] = ev
			b.next = (b.next + 1) % b.keep
		}
	}
	for s := range b.subs {
		select {
		case s.ch <- ev:
		default:
			s.lost++
			b.lost++
		}
	}
}

// Subscribe implements EventSource.
func (b *Broker) Subscribe() *Subscription {
	s := &Subscription{b: b, ch: make(chan Event, b.buf)}
	b.mu.Lock()
	b.subs[s] = struct{}{}
	b.mu.Unlock()
	return s
}

// RecentEvents implements EventSource.
func (b *Broker) RecentEvents() []Event {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]Event, 0, len(b.recent))
	out = append(out, b.recent[b.next:]...)
	return append(out, b.recent[:b.next]...)
}

// Lost is the number of events dropped for slow subscribers so far.
func (b *Broker) Lost() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.lost
}

// Subscribers is the number of open subscriptions.
func (b *Broker) Subscribers() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.subs)
}

// C delivers the events.
func (s *Subscription) C() <-chan Event { return s.ch }

// TakeLost returns how many events were lost since the last call.
func (s *Subscription) TakeLost() uint64 {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	n := s.lost
	s.lost = 0
	return n
}

// Close ends the subscription.
func (s *Subscription) Close() {
	s.b.mu.Lock()
	delete(s.b.subs, s)
	s.b.mu.Unlock()
}
