package engine

import (
	"bytes"
	"net/netip"
	"time"
)

// Bounds of the packets held for an SA (see awaitSA). A peer sends at
// most a few packets the moment its SA is up (a registration, a probe, a
// resolution); an NBMA that sends more, or keeps sending without an SA,
// is dropped as before.
const (
	saWaitFor     = 2 * time.Second // how long a packet waits for its SA
	saWaitPerNBMA = 4               // packets held per NBMA address
	saWaitPackets = 256             // packets held in all
	saWaitBytes   = 256 << 10       // bytes held in all
)

// saWaits are the packets received from NBMA addresses no SA proves yet,
// held until SetProtections proves them or saWaitFor passes. They close a
// race inherent in the controller's two inputs: charon installs an SA,
// the peer sends NHRP through it at once, and the decrypted packet can
// reach the engine before the SA's event has reached SetProtections.
type saWaits struct {
	q     map[netip.Addr]*saQueue // nil until used
	n     int                     // packets held
	bytes int                     // their bytes
}

// saQueue is the packets held from one NBMA, oldest first; its timer
// fires at the oldest one's deadline.
type saQueue struct {
	nbma netip.Addr
	pkts []saWaiting
	t    timer
}

// saWaiting is one held packet: a copy of its bytes and its deadline.
type saWaiting struct {
	b     []byte
	until time.Time
}

func (q *saQueue) fire(e *Engine) { e.expireWaiting(q) }

// awaitSA holds a copy of b, received from the NBMA from that no SA
// proves, and reports whether it did: not when from already has
// saWaitPerNBMA packets held or the engine saWaitPackets or saWaitBytes.
func (e *Engine) awaitSA(from netip.Addr, b []byte) bool {
	w := &e.waiting
	q := w.q[from]
	if q != nil && len(q.pkts) >= saWaitPerNBMA || w.n >= saWaitPackets || w.bytes+len(b) > saWaitBytes {
		return false
	}
	if q == nil {
		if w.q == nil {
			w.q = map[netip.Addr]*saQueue{}
		}
		q = &saQueue{nbma: from}
		q.t.run = q
		w.q[from] = q
	}
	q.pkts = append(q.pkts, saWaiting{b: bytes.Clone(b), until: e.now.Add(saWaitFor)})
	w.n++
	w.bytes += len(b)
	if len(q.pkts) == 1 {
		e.schedule(&q.t, q.pkts[0].until)
	}
	e.counters.inc(cHeldForSA)
	return true
}

// expireWaiting drops, as untrusted, the packets of q whose deadline has
// passed, and rearms q's timer for the next one.
func (e *Engine) expireWaiting(q *saQueue) {
	n := 0
	for n < len(q.pkts) && !q.pkts[n].until.After(e.now) {
		e.drop(DropUntrusted)
		e.waiting.bytes -= len(q.pkts[n].b)
		n++
	}
	e.waiting.n -= n
	clear(q.pkts[:n])
	q.pkts = q.pkts[n:]
	if len(q.pkts) == 0 {
		delete(e.waiting.q, q.nbma)
		return
	}
	e.schedule(&q.t, q.pkts[0].until)
}

// takeWaiting removes and returns the packets held from nbma.
func (e *Engine) takeWaiting(nbma netip.Addr) []saWaiting {
	q := e.waiting.q[nbma]
	if q == nil {
		return nil
	}
	e.cancel(&q.t)
	delete(e.waiting.q, nbma)
	e.waiting.n -= len(q.pkts)
	for _, p := range q.pkts {
		e.waiting.bytes -= len(p.b)
	}
	return q.pkts
}

// releaseWaiting handles, in arrival order, the packets held from nbma,
// which an SA now proves; one whose deadline has passed (its timer not
// run yet) is dropped as untrusted all the same.
func (e *Engine) releaseWaiting(nbma netip.Addr, pr *proof) {
	for _, p := range e.takeWaiting(nbma) {
		if !p.until.After(e.now) {
			e.drop(DropUntrusted)
			continue
		}
		e.counters.inc(cReleasedBySA)
		e.receive(nbma, p.b, pr, time.Time{})
	}
}

// dropWaiting drops the packets held from nbma for reason r.
func (e *Engine) dropWaiting(nbma netip.Addr, r DropReason) {
	for range e.takeWaiting(nbma) {
		e.drop(r)
	}
}
