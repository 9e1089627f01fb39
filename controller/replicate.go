package controller

import (
	"context"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// MulticastSender sends one copy of an IPv4 packet to each NBMA address
// through the tunnel (kernel.MulticastConn) and returns how many the
// kernel took.
type MulticastSender interface {
	Send(pkt []byte, nbmas []netip.Addr) (int, error)
	Close() error
}

// replicator sends each captured multicast packet to the current targets,
// on its own goroutine: a send may block while the socket buffer drains,
// and the loop must not. The loop owns the target set and publishes it as
// an immutable slice (setTargets); the replicator picks up a new one at
// the next packet, keeping the token bucket and counters of the peers that
// stay. Steady state allocates nothing per packet or per copy.
type replicator struct {
	send  MulticastSender
	now   func() time.Time
	rate  float64 // tokens per second per peer
	burst float64
	log   *zap.Logger

	next atomic.Pointer[[]netip.Addr] // published by the loop

	// Owned by the replicator goroutine; mu guards peers against stats.
	mu    sync.Mutex
	cur   *[]netip.Addr
	peers []*mcastPeer
	dsts  []netip.Addr // scratch: this packet's destinations

	packets, copies, limited, errors, noTargets atomic.Uint64
}

// mcastPeer is one target's token bucket and counters.
type mcastPeer struct {
	nbma    netip.Addr
	tokens  float64
	last    time.Time
	copies  atomic.Uint64
	limited atomic.Uint64
}

func newReplicator(send MulticastSender, now func() time.Time, rate float64, burst int, log *zap.Logger) *replicator {
	r := &replicator{send: send, now: now, rate: rate, burst: float64(burst), log: log}
	empty := []netip.Addr{}
	r.next.Store(&empty)
	return r
}

// setTargets publishes a new target set; t must not be modified afterwards.
func (r *replicator) setTargets(t []netip.Addr) { r.next.Store(&t) }

// run replicates every packet from ch until it is closed or ctx ends.
func (r *replicator) run(ctx context.Context, ch <-chan []byte) {
	for {
		select {
		case <-ctx.Done():
			return
		case pkt, ok := <-ch:
			if !ok {
				return
			}
			r.replicate(pkt)
		}
	}
}

// adopt switches to the published target set, keeping the state of peers
// present in both.
func (r *replicator) adopt(p *[]netip.Addr) {
	old := make(map[netip.Addr]*mcastPeer, len(r.peers))
	for _, pe := range r.peers {
		old[pe.nbma] = pe
	}
	now := r.now()
	peers := make([]*mcastPeer, 0, len(*p))
	for _, a := range *p {
		pe, ok := old[a]
		if !ok {
			pe = &mcastPeer{nbma: a, tokens: r.burst, last: now}
		}
		peers = append(peers, pe)
	}
	r.mu.Lock()
	r.cur, r.peers = p, peers
	r.mu.Unlock()
	if cap(r.dsts) < len(peers) {
		r.dsts = make([]netip.Addr, 0, len(peers))
	}
}

// take spends one token of pe's bucket if it has one.
func (pe *mcastPeer) take(now time.Time, rate, burst float64) bool {
	if d := now.Sub(pe.last); d > 0 {
		pe.tokens = min(burst, pe.tokens+d.Seconds()*rate)
		pe.last = now
	}
	if pe.tokens < 1 {
		return false
	}
	pe.tokens--
	return true
}

// replicate sends pkt to every target whose rate limit allows it.
func (r *replicator) replicate(pkt []byte) {
	if p := r.next.Load(); p != r.cur {
		r.adopt(p)
	}
	r.packets.Add(1)
	now := r.now()
	r.dsts = r.dsts[:0]
	for _, pe := range r.peers {
		if pe.take(now, r.rate, r.burst) {
			r.dsts = append(r.dsts, pe.nbma)
			pe.copies.Add(1)
		} else {
			pe.limited.Add(1)
			r.limited.Add(1)
		}
	}
	if len(r.dsts) == 0 {
		if len(r.peers) == 0 {
			r.noTargets.Add(1)
		}
		return
	}
	n, err := r.send.Send(pkt, r.dsts)
	r.copies.Add(uint64(n))
	if err != nil {
		r.errors.Add(uint64(len(r.dsts) - n))
		r.log.Debug("multicast copies refused", zap.Int("sent", n), zap.Int("wanted", len(r.dsts)), zap.Error(err))
	}
}

// counters adds the replicator's totals and per-peer counters to out, as
// dmvpnctl show counters lists them.
func (r *replicator) counters(out map[string]uint64) {
	out["multicast_packets"] = r.packets.Load()
	out["multicast_copies"] = r.copies.Load()
	out["multicast_rate_limited"] = r.limited.Load()
	out["multicast_send_errors"] = r.errors.Load()
	out["multicast_no_targets"] = r.noTargets.Load()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, pe := range r.peers {
		out["multicast_copies_to_"+pe.nbma.String()] = pe.copies.Load()
		out["multicast_rate_limited_to_"+pe.nbma.String()] = pe.limited.Load()
	}
}
