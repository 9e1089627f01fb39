package engine

import (
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/dmvpnd/dmvpnd/nhrp"
	"github.com/dmvpnd/dmvpnd/nhrp/backoff"
)

// NHSState is the state of a client's registration with one NHS.
type NHSState uint8

// NHS states.
const (
	// NHSDown: not registered and not trying right now (standby, or
	// waiting for the next retry after a refusal).
	NHSDown NHSState = iota
	// NHSProbing: a registration is outstanding and unanswered.
	NHSProbing
	// NHSUp: registered.
	NHSUp
)

func (s NHSState) String() string {
	switch s {
	case NHSDown:
		return "down"
	case NHSProbing:
		return "probing"
	case NHSUp:
		return "up"
	}
	return "unknown"
}

// nhs is the client state for one server.
type nhs struct {
	cfg    NHSConfig
	proto  netip.Addr // configured or learnt
	state  NHSState
	reason string
	since  time.Time
	wanted bool
	failed bool // no reply after RegisterFailAfter tries, or refused

	reqID   uint32
	pkt     []byte // the outstanding request, resent as is
	tries   int
	backoff time.Duration // retransmission interval
	refusal time.Duration // wait after a refusal, doubling
	timer   *timer
	expires time.Time
	public  netip.Addr // our post-NAT address as this NHS sees it
}

func (e *Engine) initNHSs() {
	for _, c := range e.cfg.NHSs {
		n := &nhs{cfg: c, proto: c.Proto, backoff: e.cfg.RetryMin, reason: "not started"}
		n.timer = newTimer(func() { e.nhsTimer(n) })
		e.nhss = append(e.nhss, n)
	}
	slices.SortStableFunc(e.nhss, func(a, b *nhs) int { return a.cfg.Priority - b.cfg.Priority })
}

// primaryNHS is the most preferred NHS that is up.
func (e *Engine) primaryNHS() *nhs {
	for _, n := range e.nhss {
		if n.state == NHSUp {
			return n
		}
	}
	return nil
}

// recomputeWanted decides which servers to be registered with: in
// preference order, every server up to and including the MaxActiveNHS-th
// healthy one (up, or trying and not yet failed). Preferred servers that are down stay wanted (they are
// retried) so the client falls back to them when they return.
func (e *Engine) recomputeWanted() {
	healthy := 0
	for _, n := range e.nhss {
		want := e.cfg.MaxActiveNHS <= 0 || healthy < e.cfg.MaxActiveNHS
		if want && (n.state == NHSUp || !n.failed) {
			healthy++ // up, or trying and not failed yet
		}
		switch {
		case want && !n.wanted:
			n.wanted = true
			e.registerNHS(n)
		case !want && (n.wanted || n.since.IsZero()):
			n.wanted = false
			n.pkt = nil
			e.cancel(n.timer)
			e.setNHSState(n, NHSDown, "standby: a preferred NHS is up")
		}
	}
}

// registerNHS sends a fresh Registration Request (new request id).
func (e *Engine) registerNHS(n *nhs) {
	n.reqID = e.newID()
	dst := n.proto
	if !dst.IsValid() {
		dst = e.cfg.Proto // dynamic NHS: protocol address not known yet
	}
	// Hop count 1 (the codec's default, as FRR): the NHS is adjacent.
	p := nhrp.NewRegistrationRequest(e.cfg.NBMA, e.cfg.Proto, dst, n.reqID, e.cfg.holdingSeconds(), e.cfg.MTU, e.cfg.Unique)
	p.CIEs[0].ClientNBMA, p.CIEs[0].ClientProto = e.cfg.NBMA, e.cfg.Proto
	p.SetNATAddress(nhrp.CIE{PrefixLength: nhrp.HostPrefixLength, ClientNBMA: n.cfg.NBMA, ClientProto: n.proto})
	e.setOwnGroup(p)
	b := e.send(p, n.cfg.NBMA)
	n.pkt = append(n.pkt[:0], b...)
	n.tries = 1
	if n.state != NHSUp {
		e.setNHSState(n, NHSProbing, "registration sent")
	}
	e.after(n.timer, e.retransmitAfter(n))
}

// retransmitAfter is how long an unanswered registration to n waits before
// it is resent: the registration interval, when one is configured, until n
// has failed; otherwise (and after a failure) the doubling backoff.
func (e *Engine) retransmitAfter(n *nhs) time.Duration {
	if e.cfg.RegistrationInterval > 0 && !n.failed {
		return e.cfg.RegistrationInterval
	}
	return n.backoff
}

// retry is the backoff of registration retransmissions and refusals,
// resolution and purge retries.
func (e *Engine) retry() backoff.Policy {
	return backoff.Policy{Min: e.cfg.RetryMin, Max: e.cfg.RetryMax}
}

// refreshAfter is how long after a successful registration to n the next
// one is sent.
func (e *Engine) refreshAfter(holding time.Duration) time.Duration {
	if i := e.cfg.RegistrationInterval; i > 0 && i < holding/3 {
		return i
	}
	return holding / 3
}

// nhsTimer fires for a retransmission, a refresh or a retry.
func (e *Engine) nhsTimer(n *nhs) {
	if !n.wanted {
		return
	}
	if n.pkt == nil { // refresh, or retry after a refusal
		n.backoff = e.cfg.RetryMin
		e.registerNHS(n)
		return
	}
	// Unanswered: retransmit the same request, backing off.
	if n.tries >= e.cfg.RegisterFailAfter && !n.failed {
		n.failed = true
		e.setNHSState(n, NHSProbing, fmt.Sprintf("no reply to %d registration requests", n.tries))
		e.rebindResolved()
		e.recomputeWanted()
	}
	n.tries++
	if e.cfg.RegistrationInterval <= 0 || n.failed {
		n.backoff = e.retry().Next(n.backoff)
	}
	e.write(n.pkt, n.cfg.NBMA)
	e.after(n.timer, e.retransmitAfter(n))
}

func (e *Engine) setNHSState(n *nhs, s NHSState, reason string) {
	if n.state == s && n.reason == reason && !n.since.IsZero() {
		return
	}
	changed := n.state != s || n.since.IsZero()
	n.state, n.reason = s, reason
	if changed {
		n.since = e.now
		switch {
		case s == NHSUp:
			// Bindings kept for servers that failed while no other was
			// up go now that this one carries the traffic.
			for _, o := range e.nhss {
				if o != n && o.state != NHSUp {
					e.dropNHSBinding(o)
				}
			}
		case e.primaryNHS() != nil:
			e.dropNHSBinding(n)
		default:
			// No other server is up: removing the binding would only
			// cut the data path through this one, which may still
			// forward (a hub whose dmvpnd restarts keeps forwarding,
			// BGP graceful restart keeps the routes through it). The
			// binding goes when another server comes up.
		}
	}
	e.emit(Event{Kind: EventNHS, Proto: n.proto, NBMA: n.cfg.NBMA, Observed: n.public, NHS: s, Reason: reason})
}

// dropNHSBinding removes the cache entry (and so the kernel's neighbour
// entry) of server n, if it has one.
func (e *Engine) dropNHSBinding(n *nhs) {
	if pe := e.peers.get(n.proto); pe != nil && pe.kind == KindNHS {
		e.removePeer(pe, "nhs "+n.state.String())
	}
}

// handleRegistrationReply completes the registration it answers.
func (e *Engine) handleRegistrationReply(in *inbound) {
	p := in.p
	var n *nhs
	for _, c := range e.nhss {
		if c.pkt != nil && c.reqID == p.RequestID && p.SrcProto == e.cfg.Proto {
			n = c
		}
	}
	if n == nil || !n.wanted || len(p.CIEs) == 0 {
		e.drop(DropUnmatched)
		return
	}
	e.cancel(n.timer)
	n.pkt = nil
	c := p.CIEs[0]
	if c.Code != nhrp.CIESuccess {
		n.refusal = e.retry().Next(n.refusal)
		n.failed = true
		e.setNHSState(n, NHSDown, "registration refused: "+c.Code.String())
		e.after(n.timer, n.refusal)
		e.rebindResolved()
		e.recomputeWanted()
		return
	}
	if ext := p.Extension(nhrp.ExtensionResponderAddress); ext != nil && len(ext.CIEs) > 0 && ext.CIEs[0].ClientProto.IsValid() {
		if !n.cfg.Proto.IsValid() {
			n.proto = ext.CIEs[0].ClientProto
		}
	}
	n.public = natted(e.cfg.NBMA, natObserved(p, e.cfg.Proto))
	e.learnPublic()
	holding := min(c.Holding(), e.cfg.HoldingTime)
	if holding <= 0 {
		holding = e.cfg.HoldingTime
	}
	n.expires = e.now.Add(holding)
	n.backoff, n.refusal, n.failed = e.cfg.RetryMin, 0, false
	e.after(n.timer, e.refreshAfter(holding))
	wasUp := n.state == NHSUp
	e.setNHSState(n, NHSUp, "registered")
	if n.proto.IsValid() {
		if pe := e.peers.get(n.proto); pe == nil || pe.kind != KindNHS {
			if pe != nil {
				e.removePeer(pe, "superseded by nhs")
			}
			e.addPeer(&peer{proto: n.proto, kind: KindNHS, claimed: n.cfg.NBMA, nbma: n.cfg.NBMA}, "nhs registered")
		}
	}
	if !wasUp {
		e.rebindResolved()
		e.recomputeWanted()
	}
}

// learnPublic takes our post-NAT address from the primary (else any) NHS.
func (e *Engine) learnPublic() {
	pub := netip.Addr{}
	if n := e.primaryNHS(); n != nil && n.public.IsValid() {
		pub = n.public
	} else {
		for _, n := range e.nhss {
			if n.public.IsValid() {
				pub = n.public
				break
			}
		}
	}
	e.myPublic = pub
}

// rebindResolved re-points resolved peers without a proven direct path at
// the current primary NHS.
func (e *Engine) rebindResolved() {
	var list []*peer
	for pe := range e.peers.all() {
		if pe.kind == KindResolved && pe.path != pathUp {
			list = append(list, pe)
		}
	}
	slices.SortFunc(list, func(a, b *peer) int { return a.proto.Compare(b.proto) })
	for _, pe := range list {
		e.rebind(pe)
	}
}
