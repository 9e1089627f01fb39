package kernel

import (
	"fmt"
	"net/netip"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// maxBatch is the most messages one sendmmsg call takes (UIO_MAXIOV).
const maxBatch = 1024

// mmsghdr is struct mmsghdr of sendmmsg(2); Go pads it like C.
type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
}

// mmsgVec is the recvmmsg/sendmmsg state of a batch on an AF_PACKET
// socket of the tunnel (NHRPConn, MulticastConn): one link-layer address
// (the peer's 4-byte NBMA address) and one iovec per message, grown once
// to the largest batch so that steady state allocates nothing.
type mmsgVec struct {
	addrs []unix.RawSockaddrLinklayer
	iovs  []unix.Iovec
	msgs  []mmsghdr
	// ctl are the receive vector's control buffers (growControl): room
	// for the kernel's receive timestamp of each message.
	ctl [][]byte

	n, off, done int // messages, progress
	err          error
	fn           func(fd uintptr) bool // recv or send bound once
}

func (v *mmsgVec) grow(n int) {
	if n <= len(v.msgs) {
		return
	}
	v.addrs = make([]unix.RawSockaddrLinklayer, n)
	v.iovs = make([]unix.Iovec, n)
	v.msgs = make([]mmsghdr, n)
	for i := range v.msgs {
		h := &v.msgs[i].hdr
		h.Name = (*byte)(unsafe.Pointer(&v.addrs[i]))
		h.Namelen = unix.SizeofSockaddrLinklayer
		h.Iov = &v.iovs[i]
		h.SetIovlen(1)
	}
}

// timestampSpace is the control buffer of one received message: one
// SCM_TIMESTAMPNS (a struct timespec).
var timestampSpace = unix.CmsgSpace(int(unsafe.Sizeof(unix.Timespec{})))

// growControl gives each of the first n messages a control buffer for its
// receive timestamp (a receive vector only).
func (v *mmsgVec) growControl(n int) {
	if n <= len(v.ctl) {
		return
	}
	buf := make([]byte, n*timestampSpace)
	v.ctl = make([][]byte, n)
	for i := range v.ctl {
		v.ctl[i] = buf[i*timestampSpace : (i+1)*timestampSpace : (i+1)*timestampSpace]
	}
}

// received returns the receive time the kernel attached to message i
// (SO_TIMESTAMPNS), zero when it attached none.
func (v *mmsgVec) received(i int) time.Time {
	n := int(v.msgs[i].hdr.Controllen)
	if i >= len(v.ctl) || n < unix.SizeofCmsghdr {
		return time.Time{}
	}
	b := v.ctl[i][:min(n, len(v.ctl[i]))]
	for len(b) >= unix.SizeofCmsghdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
		l := int(h.Len)
		if l < unix.SizeofCmsghdr || l > len(b) {
			return time.Time{}
		}
		data := b[unix.CmsgLen(0):l]
		if h.Level == unix.SOL_SOCKET && h.Type == unix.SCM_TIMESTAMPNS && len(data) >= int(unsafe.Sizeof(unix.Timespec{})) {
			ts := (*unix.Timespec)(unsafe.Pointer(&data[0]))
			return time.Unix(ts.Unix())
		}
		b = b[min(unix.CmsgSpace(l-unix.CmsgLen(0)), len(b)):]
	}
	return time.Time{}
}

// setSend prepares message i to send b to nbma (IPv4) as protocol proto
// on the tunnel ifindex. The name length set by grow holds: only recv
// changes it, on a vector that only receives.
func (v *mmsgVec) setSend(i int, b []byte, nbma netip.Addr, proto uint16, ifindex int32) {
	v.addrs[i] = unix.RawSockaddrLinklayer{Family: unix.AF_PACKET, Protocol: htons(proto), Ifindex: ifindex, Halen: 4}
	a := nbma.As4()
	copy(v.addrs[i].Addr[:4], a[:])
	v.iovs[i].Base = &b[0]
	v.iovs[i].SetLen(len(b))
}

// startSend makes the first n prepared messages the batch to send.
func (v *mmsgVec) startSend(n int) {
	v.n, v.off, v.done, v.err = n, 0, 0, nil
	if v.fn == nil {
		v.fn = v.send
	}
}

// release drops the references to the caller's buffers.
func (v *mmsgVec) release() {
	for i := range v.n {
		v.iovs[i].Base = nil
	}
}

// htons converts a protocol number to network byte order.
func htons(v uint16) uint16 { return v<<8 | v>>8 }

// recv and send call recvmmsg and sendmmsg with MSG_DONTWAIT as raw
// system calls: they never block (a full queue is EAGAIN, and the poller
// waits), so the runtime's system call bookkeeping is not needed, and it
// is what woke the sleeping sysmon thread on the first call after every
// idle spell: one thread wake-up more per packet when spokes refresh one
// at a time.

// recv is the RawConn.Read callback: one recvmmsg without waiting; false
// (wait for data) when nothing is queued. Every read starts with the
// system call, even after a short batch: RawConn.Read clears the poller's
// readiness before calling it, and the runtime may have taken the edge of
// a packet queued since the last recvmmsg (any netpoll while the batch
// was handled, a netlink round trip for one), so waiting first would
// leave that packet queued until the next one arrives.
func (v *mmsgVec) recv(fd uintptr) bool {
	for {
		r, _, errno := unix.RawSyscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&v.msgs[0])), uintptr(v.n),
			unix.MSG_DONTWAIT, 0, 0)
		switch errno {
		case unix.EAGAIN:
			return false
		case unix.EINTR:
			continue
		case 0:
			v.done = int(r)
		default:
			v.err = errno
		}
		return true
	}
}

// send is the RawConn.Write callback: sendmmsg in chunks of maxBatch,
// skipping a refused message; false (wait for room) on EAGAIN. done counts
// the messages the kernel took, err is the first refusal.
func (v *mmsgVec) send(fd uintptr) bool {
	for v.off < v.n {
		chunk := min(v.n-v.off, maxBatch)
		r, _, errno := unix.RawSyscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&v.msgs[v.off])), uintptr(chunk),
			unix.MSG_DONTWAIT, 0, 0)
		switch {
		case errno == unix.EAGAIN:
			return false
		case errno == unix.EINTR:
			continue
		case errno != 0:
			// sendmmsg reports an error only for the first message of a
			// call: that one was refused.
			if v.err == nil {
				v.err = fmt.Errorf("to %s: %w", netip.AddrFrom4([4]byte(v.addrs[v.off].Addr[:4])), errno)
			}
			v.off++
		default:
			v.off += int(r)
			v.done += int(r)
		}
	}
	return true
}
