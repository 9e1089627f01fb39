package engine

import (
	"hash/maphash"
	"net/netip"
	"time"

	"github.com/dmvpnd/dmvpnd/nhrp"
)

// A hub that falls behind its socket (thousands of spokes registering at
// once after it restarts) answers each Registration Request seconds after
// it arrived. A spoke that heard nothing within its retransmission timer
// sends the request again, with the same request id (FRR nhrpd and
// dmvpnd's own client keep the id across retransmissions), and that copy
// waits in the socket behind the others. Answering it costs a second,
// identical reply: the answer already sent carries the same request id and
// serves it. Sending those replies is work the hub does only because it is
// behind, so it falls further behind (a third of the requests of the lab's
// 10k burst were such retransmissions).
//
// A retransmission is recognised by what the kernel knows: its receive
// time. When the hub sends a successful Registration Reply to a request
// that waited in the socket at least crossingMinWait, it remembers the
// request (sender's NBMA, source protocol address, request id) and when
// it answered. A Registration Request with the same three that the
// kernel received before that answer was sent crossed it: it is dropped
// (drop_retransmit_answered). One received after the answer is served as
// usual, so a spoke whose reply was lost is answered at its next
// retransmission. Refusals are not remembered: a retransmission may
// succeed where the first request did not.
//
// The memory is short-lived: the socket delivers in arrival order, so once
// a packet received after an answer is handled, nothing that crossed that
// answer can still be queued, and the answer is forgotten. A hub that
// keeps up remembers nothing (no request waits crossingMinWait).

// crossingMinWait is how long a request must have waited in the socket for
// its answer to be remembered: shorter than any retransmission timer (FRR
// and dmvpnd start at 1 s or more), so that every answer a retransmission
// can cross is remembered, and long enough that a hub that keeps up
// remembers nothing.
const crossingMinWait = 250 * time.Millisecond

// maxCrossings bounds the answers remembered; the oldest are forgotten
// first (their retransmissions are then answered, as without this).
const maxCrossings = 1 << 16

// crossingKey names a Registration Request and its retransmissions.
type crossingKey struct {
	from netip.Addr // the GRE source it came from
	src  netip.Addr // its source protocol address
	id   uint32     // its request id
}

// answered is one remembered answer: the keyed hash of its request's
// crossingKey (a collision needs the engine's secret seed) and when it was
// sent (Unix ns).
type answered struct {
	key uint64
	at  int64
}

// crossings are the answers sent while behind (see the comment above),
// in the order they were sent, and the latest of each request: 16 bytes
// in order and about as much in last per answer, while behind only.
type crossings struct {
	seed  maphash.Seed
	order []answered
	head  int // order[:head] are forgotten
	last  map[uint64]int64
}

// key is the keyed hash of the request p (or its reply) from the NBMA from.
func (x *crossings) key(from netip.Addr, p *nhrp.Packet) uint64 {
	return maphash.Comparable(x.seed, crossingKey{from: from, src: p.SrcProto, id: p.RequestID})
}

// noteAnswered remembers that the request in was answered now with the
// reply p, if every CIE of p succeeded and the request waited long enough
// for a retransmission to cross the answer.
func (e *Engine) noteAnswered(in *inbound, p *nhrp.Packet) {
	if in.received.IsZero() || e.now.Sub(in.received) < crossingMinWait || !allSucceeded(p) {
		return
	}
	x := &e.crossings
	if x.last == nil {
		x.seed, x.last = maphash.MakeSeed(), map[uint64]int64{}
	}
	if len(x.order)-x.head >= maxCrossings {
		x.forgetOldest()
	}
	if x.head > 0 && x.head >= len(x.order)/2 {
		// A hub that stays behind never empties order: move what is
		// remembered to the front rather than grow it for ever.
		x.order = append(x.order[:0], x.order[x.head:]...)
		x.head = 0
	}
	k, at := x.key(in.from, p), e.now.UnixNano()
	x.order = append(x.order, answered{key: k, at: at})
	x.last[k] = at
}

// crossed reports whether the Registration Request in is a retransmission
// the kernel received before the answer to its request was sent.
func (e *Engine) crossed(in *inbound) bool {
	x := &e.crossings
	if in.received.IsZero() || len(x.last) == 0 {
		return false
	}
	at, ok := x.last[x.key(in.from, in.p)]
	return ok && in.received.UnixNano() < at
}

// forgetBefore forgets the answers sent before t, the receive time of the
// packet being handled: the socket delivers in order, so what crossed them
// has been handled.
func (x *crossings) forgetBefore(t time.Time) {
	ns := t.UnixNano()
	for x.head < len(x.order) && x.order[x.head].at < ns {
		x.forgetOldest()
	}
}

// forgetOldest forgets the oldest remembered answer; the memory is given
// back once none is left.
func (x *crossings) forgetOldest() {
	a := x.order[x.head]
	x.head++
	if at, ok := x.last[a.key]; ok && at <= a.at {
		delete(x.last, a.key)
	}
	if x.head == len(x.order) {
		x.order, x.head, x.last = nil, 0, nil
	}
}

// allSucceeded reports whether every CIE of the reply p succeeded.
func allSucceeded(p *nhrp.Packet) bool {
	for i := range p.CIEs {
		if p.CIEs[i].Code != nhrp.CIESuccess {
			return false
		}
	}
	return len(p.CIEs) > 0
}
