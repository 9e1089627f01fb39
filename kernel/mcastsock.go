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

// DefaultMulticastSndBuf is the replication socket's send buffer: a burst of
// full-size copies to thousands of peers waits here while the underlay
// drains, instead of failing with EAGAIN.
const DefaultMulticastSndBuf = 8 << 20

// MulticastConn sends copies of an IPv4 packet through the tunnel's packet
// path: AF_PACKET, SOCK_DGRAM on the tunnel, protocol ETH_P_IP, with the
// peer's NBMA address as the 4-byte link-layer destination. The kernel's
// ip_gre header_ops build the outer IPv4 and GRE headers towards that
// address (as for NHRP, see NHRPConn), and the outer packet is routed like
// any GRE packet of the tunnel: through the xfrm policy of the peer's SA
// when IPsec is on, to the address the peer's GRE goes to behind NAT.
//
// The socket is bound to protocol 0: it receives nothing. Send is safe for
// use by one goroutine at a time (it serializes callers).
type MulticastConn struct {
	c       *packet.Conn
	rc      syscall.RawConn
	ifindex int

	mu sync.Mutex
	v  mmsgVec
}

// ListenMulticastConfig configures ListenMulticast.
type ListenMulticastConfig struct {
	// NetNS is an open network namespace fd (0: current).
	NetNS int
	// Ifindex of the tunnel.
	Ifindex int
	// SndBuf is SO_SNDBUF in bytes; 0 means DefaultMulticastSndBuf.
	SndBuf int
}

// ListenMulticast opens the replication socket on the tunnel.
func ListenMulticast(cfg ListenMulticastConfig) (*MulticastConn, error) {
	c, rc, err := listenTunnel("multicast socket", cfg.NetNS, cfg.Ifindex, 0, sndBuf, cmp.Or(cfg.SndBuf, DefaultMulticastSndBuf))
	if err != nil {
		return nil, err
	}
	return &MulticastConn{c: c, rc: rc, ifindex: cfg.Ifindex}, nil
}

// Send sends one copy of the IPv4 packet pkt to each NBMA address in dsts
// with sendmmsg, up to 1024 copies per system call, and returns how many
// copies the kernel took. Copies the kernel refuses are skipped and the
// first refusal is returned; when the send buffer is full Send waits for
// room (it blocks only its caller). Send allocates nothing once its buffers
// have grown to len(dsts).
func (m *MulticastConn) Send(pkt []byte, dsts []netip.Addr) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := fillCopies(&m.v, pkt, dsts, int32(m.ifindex)); err != nil {
		return 0, opErr("send multicast copies", fmt.Sprintf("ifindex %d", m.ifindex), err)
	}
	if len(dsts) == 0 {
		return 0, nil
	}
	err := m.rc.Write(m.v.fn)
	sent, serr := m.v.done, m.v.err
	m.v.release()
	if err == nil {
		err = serr
	}
	if err == nil {
		return sent, nil
	}
	return sent, opErr("send multicast copies", fmt.Sprintf("ifindex %d", m.ifindex), err)
}

// Close closes the socket; a Send waiting for room returns an error.
func (m *MulticastConn) Close() error { return m.c.Close() }

// fillCopies prepares v to send one copy of the IPv4 packet pkt to each of
// dsts. When v grows, its address headers are written and every message is
// pointed at the first iovec, which holds pkt (a MulticastConn's vector
// only ever sends one packet, as IPv4, on one tunnel): a copy costs its
// 4-byte address.
func fillCopies(v *mmsgVec, pkt []byte, dsts []netip.Addr, ifindex int32) error {
	if len(pkt) < 20 || pkt[0]>>4 != 4 {
		return errors.New("not an IPv4 packet")
	}
	if len(dsts) > len(v.msgs) {
		v.grow(len(dsts))
		for i := range v.addrs {
			v.addrs[i] = unix.RawSockaddrLinklayer{Family: unix.AF_PACKET, Protocol: htons(unix.ETH_P_IP), Ifindex: ifindex, Halen: 4}
			v.msgs[i].hdr.Iov = &v.iovs[0]
		}
	}
	for i, d := range dsts {
		if !d.Is4() {
			return fmt.Errorf("NBMA address %s is not IPv4", d)
		}
		a := d.As4()
		copy(v.addrs[i].Addr[:4], a[:])
	}
	if len(dsts) > 0 {
		v.iovs[0].Base = &pkt[0]
		v.iovs[0].SetLen(len(pkt))
	}
	v.startSend(len(dsts))
	return nil
}
