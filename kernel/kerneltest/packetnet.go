package kerneltest

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"

	"github.com/dmvpnd/dmvpnd/kernel"
)

// Network is an in-memory NBMA network of kernel.PacketConn endpoints, one
// per NBMA address: what one endpoint writes to an address, the endpoint
// owning it reads with the writer's address as source.
type Network struct {
	mu    sync.Mutex
	conns map[netip.Addr]*PacketConn
}

// NewNetwork returns an empty network.
func NewNetwork() *Network { return &Network{conns: map[netip.Addr]*PacketConn{}} }

type datagram struct {
	from netip.Addr
	b    []byte
}

// PacketConn is one endpoint; it implements kernel.PacketConn.
type PacketConn struct {
	net    *Network
	local  netip.Addr
	in     chan datagram
	done   chan struct{}
	closeM sync.Once
}

var _ kernel.BatchPacketConn = (*PacketConn)(nil)

// Listen attaches an endpoint owning nbma.
func (n *Network) Listen(nbma netip.Addr) (*PacketConn, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, taken := n.conns[nbma]; taken {
		return nil, fmt.Errorf("kerneltest: %s already in use", nbma)
	}
	c := &PacketConn{net: n, local: nbma, in: make(chan datagram, 256), done: make(chan struct{})}
	n.conns[nbma] = c
	return c, nil
}

// ReadFrom implements kernel.PacketConn.
func (c *PacketConn) ReadFrom(b []byte) (int, netip.Addr, error) {
	select {
	case d := <-c.in:
		return copy(b, d.b), d.from, nil
	case <-c.done:
		return 0, netip.Addr{}, net.ErrClosed
	}
}

// ReadBatch implements kernel.BatchPacketConn: it waits for one datagram,
// then takes what else is queued without waiting.
func (c *PacketConn) ReadBatch(ds []kernel.Datagram) (int, error) {
	if len(ds) == 0 {
		return 0, nil
	}
	n, from, err := c.ReadFrom(ds[0].B[:cap(ds[0].B)])
	if err != nil {
		return 0, err
	}
	ds[0].B, ds[0].NBMA = ds[0].B[:n], from
	for i := 1; i < len(ds); i++ {
		select {
		case d := <-c.in:
			ds[i].B = ds[i].B[:copy(ds[i].B[:cap(ds[i].B)], d.b)]
			ds[i].NBMA = d.from
		default:
			return i, nil
		}
	}
	return len(ds), nil
}

// WriteBatch implements kernel.BatchPacketConn with WriteTo in order.
func (c *PacketConn) WriteBatch(ds []kernel.Datagram) (int, error) {
	var first error
	n := 0
	for _, d := range ds {
		if _, err := c.WriteTo(d.B, d.NBMA); err != nil {
			first = cmp.Or(first, err)
			continue
		}
		n++
	}
	return n, first
}

// WriteTo implements kernel.PacketConn. Packets to unknown addresses are
// dropped silently, as on a real network; a full receive queue drops too.
func (c *PacketConn) WriteTo(b []byte, nbma netip.Addr) (int, error) {
	select {
	case <-c.done:
		return 0, net.ErrClosed
	default:
	}
	if !nbma.Is4() {
		return 0, errors.New("kerneltest: NBMA address must be IPv4")
	}
	c.net.mu.Lock()
	dst := c.net.conns[nbma]
	c.net.mu.Unlock()
	if dst != nil {
		select {
		case dst.in <- datagram{from: c.local, b: append([]byte(nil), b...)}:
		default:
		}
	}
	return len(b), nil
}

// Close implements kernel.PacketConn.
func (c *PacketConn) Close() error {
	c.closeM.Do(func() {
		close(c.done)
		c.net.mu.Lock()
		delete(c.net.conns, c.local)
		c.net.mu.Unlock()
	})
	return nil
}
