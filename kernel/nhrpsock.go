package kernel

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"syscall"

	"github.com/mdlayher/packet"
	"golang.org/x/sys/unix"
)

// EtherTypeNHRP is the protocol number NHRP uses over GRE (RFC 2332 §3,
// "NHRP over GRE").
const EtherTypeNHRP = 0x2001

// DefaultNHRPRcvBuf is the NHRP socket's receive buffer: room for thousands
// of registrations arriving at once after a hub reboot.
const DefaultNHRPRcvBuf = 8 << 20

// NHRPConn is the NHRP packet socket: AF_PACKET, SOCK_DGRAM, protocol 0x2001,
// bound to the tunnel. The link-layer address of an mGRE tunnel is the 4-byte
// NBMA (outer IPv4) address: received packets carry the sender's, and sending
// to an NBMA address needs no neighbor entry. It implements PacketConn.
type NHRPConn struct {
	c       *packet.Conn
	rc      syscall.RawConn
	ifindex int

	rmu sync.Mutex // ReadBatch
	rv  mmsgVec
	wmu sync.Mutex // WriteBatch
	wv  mmsgVec

	mu    sync.Mutex
	stats NHRPStats // accumulated: the kernel resets its counters on read
}

// NHRPStats are the socket's kernel counters since it was opened.
type NHRPStats struct {
	// Packets is every packet that reached the socket, Drops those of them
	// the kernel dropped because the receive buffer was full.
	Packets, Drops uint64
}

var _ PacketConn = (*NHRPConn)(nil)

// ListenNHRPConfig configures ListenNHRP.
type ListenNHRPConfig struct {
	// NetNS is an open network namespace fd (0: current).
	NetNS int
	// Ifindex of the tunnel.
	Ifindex int
	// RcvBuf is SO_RCVBUF in bytes; 0 means DefaultNHRPRcvBuf. As root it is
	// set with SO_RCVBUFFORCE, beyond net.core.rmem_max.
	RcvBuf int
}

// ListenNHRP opens the NHRP socket on the tunnel.
func ListenNHRP(cfg ListenNHRPConfig) (*NHRPConn, error) {
	c, rc, err := listenTunnel("NHRP socket", cfg.NetNS, cfg.Ifindex, EtherTypeNHRP, rcvBuf, cmp.Or(cfg.RcvBuf, DefaultNHRPRcvBuf))
	if err != nil {
		return nil, err
	}
	// Each packet's receive time (Datagram.Received): how long it waited
	// in the socket, which tells a retransmission that crossed its answer.
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1) }); err != nil || serr != nil {
		_ = c.Close()
		return nil, opErr("set NHRP socket SO_TIMESTAMPNS", fmt.Sprintf("ifindex %d", cfg.Ifindex), errors.Join(err, serr))
	}
	return &NHRPConn{c: c, rc: rc, ifindex: cfg.Ifindex}, nil
}

// RcvBuf returns the socket's effective receive buffer (the kernel doubles
// the requested value for bookkeeping).
func (c *NHRPConn) RcvBuf() (int, error) {
	rc, err := c.c.SyscallConn()
	if err != nil {
		return 0, err
	}
	var v int
	var gerr error
	if err := rc.Control(func(fd uintptr) {
		v, gerr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF)
	}); err != nil {
		return 0, err
	}
	return v, gerr
}

// ReadFrom reads one NHRP packet into b (at most len(b) octets) and
// returns the sender's NBMA address: a ReadBatch of one, so that single
// packets and batches arrive through the same recvmmsg code (a packet from
// no NBMA address is skipped alike).
func (c *NHRPConn) ReadFrom(b []byte) (int, netip.Addr, error) {
	ds := [1]Datagram{{B: b[:len(b):len(b)]}} // ReadBatch fills up to the capacity
	for {
		n, err := c.ReadBatch(ds[:])
		if err != nil {
			return 0, netip.Addr{}, err
		}
		if n == 1 {
			return len(ds[0].B), ds[0].NBMA, nil
		}
	}
}

// WriteTo sends one NHRP packet to an NBMA address through the tunnel: a
// WriteBatch of one, so that single packets and batches leave through the
// same sendmmsg code.
func (c *NHRPConn) WriteTo(b []byte, nbma netip.Addr) (int, error) {
	ds := [1]Datagram{{B: b, NBMA: nbma}}
	if _, err := c.WriteBatch(ds[:]); err != nil {
		return 0, err
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
	return c.stats, nil
}

// Close closes the socket; a blocked ReadFrom returns an error.
func (c *NHRPConn) Close() error { return c.c.Close() }
