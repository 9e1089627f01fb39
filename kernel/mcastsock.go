package kernel

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"unsafe"

	"github.com/mdlayher/packet"
	"golang.org/x/sys/unix"
)

// DefaultMulticastSndBuf is the replication socket's send buffer: a burst of
// full-size copies to thousands of peers waits here while the underlay
// drains, instead of failing with EAGAIN.
const DefaultMulticastSndBuf = 8 << 20

// maxBatch is the most messages one sendmmsg call takes (UIO_MAXIOV).
const maxBatch = 1024

// mmsghdr is struct mmsghdr of sendmmsg(2); Go pads it like C.
type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
}

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
	b  mmsgBatch
	// sendFn is b.send bound once, so that passing it to RawConn.Write
	// allocates nothing.
	sendFn func(fd uintptr) bool
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
	obj := fmt.Sprintf("ifindex %d", cfg.Ifindex)
	if cfg.Ifindex <= 0 {
		return nil, opErr("open multicast socket", obj, errors.New("invalid ifindex"))
	}
	if cfg.SndBuf == 0 {
		cfg.SndBuf = DefaultMulticastSndBuf
	}
	var c *packet.Conn
	err := inNetNS(cfg.NetNS, func() error {
		var lerr error
		c, lerr = packet.Listen(&net.Interface{Index: cfg.Ifindex}, packet.Datagram, 0, nil)
		return lerr
	})
	if err != nil {
		return nil, opErr("open multicast socket", obj, err)
	}
	rc, err := c.SyscallConn()
	if err != nil {
		_ = c.Close()
		return nil, opErr("open multicast socket", obj, err)
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, cfg.SndBuf)
		if serr != nil {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF, cfg.SndBuf)
		}
	}); err != nil || serr != nil {
		_ = c.Close()
		return nil, opErr("set multicast socket send buffer", obj, errors.Join(err, serr))
	}
	m := &MulticastConn{c: c, rc: rc, ifindex: cfg.Ifindex}
	m.b.ifindex = int32(cfg.Ifindex)
	m.sendFn = m.b.send
	return m, nil
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
	if err := m.b.fill(pkt, dsts); err != nil {
		return 0, opErr("send multicast copies", fmt.Sprintf("ifindex %d", m.ifindex), err)
	}
	if len(dsts) == 0 {
		return 0, nil
	}
	err := m.rc.Write(m.sendFn)
	sent, serr := m.b.sent, m.b.err
	m.b.release()
	if err == nil {
		err = serr
	}
	return sent, opErr("send multicast copies", fmt.Sprintf("ifindex %d", m.ifindex), err)
}

// Close closes the socket; a Send waiting for room returns an error.
func (m *MulticastConn) Close() error { return m.c.Close() }

// mmsgBatch holds one packet's sendmmsg messages: one link-layer address
// per destination, one iovec shared by all messages.
type mmsgBatch struct {
	ifindex int32
	iov     unix.Iovec
	addrs   []unix.RawSockaddrLinklayer
	msgs    []mmsghdr
	n       int // messages of the current packet

	off, sent int   // progress of the current packet
	err       error // first refusal
}

// htons converts a protocol number to network byte order.
func htons(v uint16) uint16 { return v<<8 | v>>8 }

// fill prepares the messages for pkt to dsts; it grows the buffers only
// when dsts is longer than ever before.
func (b *mmsgBatch) fill(pkt []byte, dsts []netip.Addr) error {
	if len(pkt) < 20 || pkt[0]>>4 != 4 {
		return errors.New("not an IPv4 packet")
	}
	if len(dsts) > len(b.msgs) {
		b.addrs = make([]unix.RawSockaddrLinklayer, len(dsts))
		b.msgs = make([]mmsghdr, len(dsts))
		for i := range b.addrs {
			b.addrs[i] = unix.RawSockaddrLinklayer{
				Family:   unix.AF_PACKET,
				Protocol: htons(unix.ETH_P_IP),
				Ifindex:  b.ifindex,
				Halen:    4,
			}
			h := &b.msgs[i].hdr
			h.Name = (*byte)(unsafe.Pointer(&b.addrs[i]))
			h.Namelen = unix.SizeofSockaddrLinklayer
			h.Iov = &b.iov
			h.SetIovlen(1)
		}
	}
	for i, d := range dsts {
		if !d.Is4() {
			return fmt.Errorf("NBMA address %s is not IPv4", d)
		}
		a := d.As4()
		copy(b.addrs[i].Addr[:4], a[:])
	}
	b.iov.Base = &pkt[0]
	b.iov.SetLen(len(pkt))
	b.n, b.off, b.sent, b.err = len(dsts), 0, 0, nil
	return nil
}

// release drops the reference to the packet.
func (b *mmsgBatch) release() { b.iov.Base = nil }

// send is the RawConn.Write callback: it sends the remaining messages in
// chunks of maxBatch and returns false (wait for room) on EAGAIN.
func (b *mmsgBatch) send(fd uintptr) bool {
	for b.off < b.n {
		chunk := min(b.n-b.off, maxBatch)
		r, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&b.msgs[b.off])), uintptr(chunk),
			unix.MSG_DONTWAIT, 0, 0)
		switch {
		case errno == unix.EAGAIN:
			return false
		case errno == unix.EINTR:
			continue
		case errno != 0:
			// The message at off was refused (sendmmsg reports an error
			// only for the first message of a call): skip it.
			if b.err == nil {
				b.err = fmt.Errorf("copy to %s: %w", netip.AddrFrom4([4]byte(b.addrs[b.off].Addr[:4])), errno)
			}
			b.off++
		default:
			b.off += int(r)
			b.sent += int(r)
		}
	}
	return true
}
