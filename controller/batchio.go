package controller

import (
	"context"
	"errors"
	"net/netip"

	"go.uber.org/zap"

	"github.com/dmvpnd/dmvpnd/kernel"
)

// maxReadBatch is the most NHRP packets the reader takes off the socket in
// one call and hands the loop at once.
const maxReadBatch = 128

// batchIO is the loop's state while it handles a batch of packets: the
// neighbor writes and the packets the engine produced, written in one
// netlink transaction and one sendmmsg when the batch is done. Loop only.
type batchIO struct {
	// deferBinds: registrations' neighbor writes are queued and the engine
	// told so (engine.ErrBindDeferred); queue: unbinds and sends are
	// queued. Both are false outside a batch: everything is synchronous.
	deferBinds, queue bool

	ops     []kernel.NeighborOp
	isBind  []bool  // ops[i] is a deferred engine bind
	results []error // outcomes of the deferred binds, in order

	sends []kernel.Datagram
	slab  []byte // backing store of sends
}

// batcher returns the dataplane's batch interface, if it has one.
func (c *Controller) batcher() (kernel.NeighborBatcher, bool) {
	nb, ok := c.deps.Dataplane.(kernel.NeighborBatcher)
	return nb, ok
}

// readPackets reads packets off the socket in batches (all that is
// queued, up to maxReadBatch) and hands each to the loop (handlePackets)
// until ctx ends, the loop stops or the socket fails. The loop drops
// nothing here: while a batch is handled the kernel's socket buffer
// absorbs bursts.
func (c *Controller) readPackets(ctx context.Context) {
	go func() {
		<-ctx.Done()
		_ = c.conn.Close()
	}()
	bc, ok := c.conn.(kernel.BatchPacketConn)
	if !ok {
		bc = singleConn{c.conn}
	}
	ds := make([]kernel.Datagram, maxReadBatch)
	for i := range ds {
		ds[i].B = make([]byte, maxPacket)
	}
	started := false
	for {
		n, err := bc.ReadBatch(ds)
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, context.Canceled) {
				c.log.Error("reading NHRP socket", zap.Error(err))
			}
			return
		}
		if n == 0 {
			continue
		}
		// The engine may keep what it is handed: each batch gets its
		// own copy.
		size := 0
		for _, d := range ds[:n] {
			size += len(d.B)
		}
		slab := make([]byte, 0, size)
		batch := make([]packet, n)
		for i, d := range ds[:n] {
			off := len(slab)
			slab = append(slab, d.B...)
			batch[i] = packet{from: d.NBMA, b: slab[off:len(slab):len(slab)], at: d.Received}
		}
		if !started {
			select {
			case <-c.lt.started:
				started = true
			case <-ctx.Done():
				return
			}
		}
		if !c.handlePackets(ctx, batch) {
			return
		}
	}
}

// singleConn reads one packet per batch from a PacketConn without batch
// support.
type singleConn struct{ kernel.PacketConn }

func (s singleConn) ReadBatch(ds []kernel.Datagram) (int, error) {
	n, from, err := s.ReadFrom(ds[0].B[:cap(ds[0].B)])
	if err != nil {
		return 0, err
	}
	ds[0].B, ds[0].NBMA = ds[0].B[:n], from
	return 1, nil
}

func (s singleConn) WriteBatch(ds []kernel.Datagram) (int, error) {
	n := 0
	var first error
	for _, d := range ds {
		if _, err := s.WriteTo(d.B, d.NBMA); err != nil {
			if first == nil {
				first = err
			}
			continue
		}
		n++
	}
	return n, first
}

// handleBatch gives the engine a batch of packets, then writes the
// neighbor entries they need in one transaction, lets the engine answer
// the registrations that waited for them (code 5 for a refused entry), and
// sends every packet produced in one batch. Loop only.
func (c *Controller) handleBatch(ps []packet) {
	_, batched := c.batcher()
	c.bio.deferBinds, c.bio.queue = batched, true
	for _, p := range ps {
		c.countPacket(p.b, false)
		if ignoresIndication(c.config(), p.b) {
			c.stats.inc("traffic_indications_ignored")
			continue
		}
		c.syncProtections()
		c.handlePacket(p)
	}
	c.bio.deferBinds = false
	c.flushNeighbors()
	if len(c.bio.results) > 0 {
		results := c.bio.results
		c.bio.results = nil
		c.eng.CommitBindings(results)
		c.flushNeighbors() // entries removed for refusals
	}
	c.bio.queue = false
	c.flushSends()
}

// queueNeighbor queues op; bind marks an engine bind whose outcome the
// engine waits for.
func (c *Controller) queueNeighbor(op kernel.NeighborOp, bind bool) {
	c.bio.ops = append(c.bio.ops, op)
	c.bio.isBind = append(c.bio.isBind, bind)
}

// flushNeighbors writes the queued neighbor changes in one transaction and
// keeps the outcomes of the engine's deferred binds for CommitBindings.
func (c *Controller) flushNeighbors() {
	if len(c.bio.ops) == 0 {
		return
	}
	nb, _ := c.batcher()
	errs := nb.ApplyNeighbors(c.bio.ops)
	for i, op := range c.bio.ops {
		var err error
		if i < len(errs) {
			err = errs[i]
		} else {
			err = errors.New("controller: no outcome for a batched neighbor write")
		}
		if err != nil {
			c.stats.inc("kernel_neighbor_errors")
			c.log.Warn("programming neighbor", zap.Stringer("op", op), zap.Error(err))
		}
		if c.bio.isBind[i] {
			c.bio.results = append(c.bio.results, err)
		}
	}
	c.bio.ops, c.bio.isBind = c.bio.ops[:0], c.bio.isBind[:0]
}

// queueSend copies b (the engine reuses its buffer) for flushSends.
func (c *Controller) queueSend(b []byte, nbma netip.Addr) {
	off := len(c.bio.slab)
	c.bio.slab = append(c.bio.slab, b...)
	c.bio.sends = append(c.bio.sends, kernel.Datagram{NBMA: nbma, B: c.bio.slab[off:len(c.bio.slab):len(c.bio.slab)]})
}

// flushSends sends the queued packets with one WriteBatch.
func (c *Controller) flushSends() {
	if len(c.bio.sends) == 0 {
		return
	}
	bc, ok := c.conn.(kernel.BatchPacketConn)
	if !ok {
		bc = singleConn{c.conn}
	}
	// A slab that grew stays: steady state allocates nothing.
	sends := c.bio.sends
	n, err := bc.WriteBatch(sends)
	if err != nil || n < len(sends) {
		c.stats.add("nhrp_send_errors", uint64(len(sends)-n))
		c.log.Debug("sending NHRP packets", zap.Int("sent", n), zap.Int("queued", len(sends)), zap.Error(err))
	}
	clear(sends)
	c.bio.sends, c.bio.slab = sends[:0], c.bio.slab[:0]
}
