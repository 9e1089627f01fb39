package kernel

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/mdlayher/packet"
)

// EtherTypeNHRP is the protocol number NHRP uses over GRE (RFC 2332 §3,
// "NHRP over GRE").
const EtherTypeNHRP = 0x2001

// DefaultNHRPRcvBuf is the size of the NHRP socket's receive ring (4096
// frames): room for thousands of registrations arriving at once after a
// hub reboot.
const DefaultNHRPRcvBuf = 8 << 20

// NHRPConn is the NHRP packet socket: AF_PACKET, SOCK_DGRAM, protocol 0x2001,
// bound to the tunnel. The link-layer address of an mGRE tunnel is the 4-byte
// NBMA (outer IPv4) address: received packets carry the sender's, and sending
// to an NBMA address needs no neighbor entry. It implements PacketConn.
type NHRPConn struct {
	c       *packet.Conn
	rc      syscall.RawConn
	ifindex int

	// rmu is held by a read for as long as it waits: nothing else that
	// may run meanwhile takes it (Close does, after the close woke the
	// read).
	rmu       sync.Mutex
	ring      *rxRing // nil once closed
	ringBytes int
	truncated atomic.Uint64 // packets longer than a frame
	rds       []Datagram    // the read in progress (readRing)
	rn        int
	readFn    func(uintptr) bool
	wmu       sync.Mutex // WriteBatch
	wv        mmsgVec

	mu    sync.Mutex
	stats NHRPStats // accumulated: the kernel resets its counters on read
}

// NHRPStats are the socket's kernel counters since it was opened.
type NHRPStats struct {
	// Packets is every packet that reached the socket, Drops those of them
	// the kernel dropped because the receive ring was full.
	Packets, Drops uint64
	// Truncated are packets longer than a ring frame, dropped by the
	// reader.
	Truncated uint64
}

var _ PacketConn = (*NHRPConn)(nil)

// ListenNHRPConfig configures ListenNHRP.
type ListenNHRPConfig struct {
	// NetNS is an open network namespace fd (0: current).
	NetNS int
	// Ifindex of the tunnel.
	Ifindex int
	// RcvBuf is the receive ring's size in bytes (whole blocks of 32
	// frames of 2 KiB; at least one); 0 means DefaultNHRPRcvBuf. The ring
	// is mapped into the process: it counts in its RSS from the start.
	RcvBuf int
}

// ListenNHRP opens the NHRP socket on the tunnel.
func ListenNHRP(cfg ListenNHRPConfig) (*NHRPConn, error) {
	c, rc, err := listenTunnel("NHRP socket", cfg.NetNS, cfg.Ifindex, EtherTypeNHRP, rcvBuf, 0)
	if err != nil {
		return nil, err
	}
	var ring *rxRing
	var serr error
	if err := rc.Control(func(fd uintptr) { ring, serr = setupRing(int(fd), cmp.Or(cfg.RcvBuf, DefaultNHRPRcvBuf)) }); err != nil || serr != nil {
		_ = c.Close()
		return nil, opErr("set up the NHRP socket's receive ring", fmt.Sprintf("ifindex %d", cfg.Ifindex), errors.Join(err, serr))
	}
	conn := &NHRPConn{c: c, rc: rc, ifindex: cfg.Ifindex, ring: ring, ringBytes: ring.frames * ringFrameSize}
	ring.truncated = &conn.truncated
	conn.readFn = conn.readRing
	return conn, nil
}

// RcvBuf returns the size of the socket's receive ring in bytes.
func (c *NHRPConn) RcvBuf() (int, error) { return c.ringBytes, nil }

// ReadFrom reads one NHRP packet and returns the sender's NBMA address
// (ReadBatch of one).
func (c *NHRPConn) ReadFrom(b []byte) (int, netip.Addr, error) {
	ds := [1]Datagram{{B: b}}
	if _, err := c.ReadBatch(ds[:]); err != nil {
		return 0, netip.Addr{}, err
	}
	return len(ds[0].B), ds[0].NBMA, nil
}

// WriteTo sends one NHRP packet to an NBMA address through the tunnel.
func (c *NHRPConn) WriteTo(b []byte, nbma netip.Addr) (int, error) {
	if !nbma.Is4() || len(b) == 0 {
		return 0, opErr("send NHRP packet", "to "+nbma.String(), errors.New("NBMA address must be IPv4 and the packet not empty"))
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.wv.grow(1)
	c.wv.setSend(0, b, nbma, EtherTypeNHRP, int32(c.ifindex))
	if _, err := c.sendLocked(1); err != nil {
		return 0, opErr("send NHRP packet", fmt.Sprintf("ifindex %d", c.ifindex), err)
	}
	return len(b), nil
}

// Stats returns the kernel's packet and drop counters since the socket was
// opened (PACKET_STATISTICS).
func (c *NHRPConn) Stats() (NHRPStats, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	st, err := c.c.Stats()
	if err != nil {
		return c.stats, opErr("read NHRP socket statistics", fmt.Sprintf("ifindex %d", c.ifindex), err)
	}
	c.stats.Packets += uint64(st.Packets)
	c.stats.Drops += uint64(st.Drops)
	c.stats.Truncated = c.truncated.Load()
	return c.stats, nil
}

// Close closes the socket (a blocked read returns an error), then unmaps
// the ring once no read uses it.
func (c *NHRPConn) Close() error {
	err := c.c.Close()
	c.rmu.Lock()
	defer c.rmu.Unlock()
	err = errors.Join(err, c.ring.close())
	c.ring = nil
	return err
}
