package kernel

import (
	"errors"
	"fmt"
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Datagram is one NHRP packet and the NBMA address it came from or goes to.
type Datagram struct {
	B    []byte
	NBMA netip.Addr
}

// BatchPacketConn is a PacketConn that moves many packets per system call.
type BatchPacketConn interface {
	PacketConn
	// ReadBatch waits for at least one packet, then takes what else is
	// already queued, without waiting, up to len(ds). Each ds[i].B is the
	// buffer a packet is read into (its capacity is the limit); on return
	// the first n are resliced to their packets and carry their senders.
	ReadBatch(ds []Datagram) (n int, err error)
	// WriteBatch sends ds in order and returns how many the kernel took. A
	// packet the kernel refuses is skipped and the first refusal returned;
	// when the send buffer is full it waits for room.
	WriteBatch(ds []Datagram) (n int, err error)
}

var _ BatchPacketConn = (*NHRPConn)(nil)

// mmsgVec is the recvmmsg/sendmmsg state of a batch: one link-layer
// address and one iovec per message, grown once to the largest batch.
type mmsgVec struct {
	addrs []unix.RawSockaddrLinklayer
	iovs  []unix.Iovec
	msgs  []mmsghdr

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
		h.Iov = &v.iovs[i]
		h.SetIovlen(1)
	}
}

// release drops the references to the caller's buffers.
func (v *mmsgVec) release() {
	for i := range v.n {
		v.iovs[i].Base = nil
	}
}

// recv is the RawConn.Read callback: one recvmmsg without waiting; false
// (wait for data) when nothing is queued.
func (v *mmsgVec) recv(fd uintptr) bool {
	for {
		r, _, errno := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&v.msgs[0])), uintptr(v.n),
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
// skipping a refused message; false (wait for room) on EAGAIN.
func (v *mmsgVec) send(fd uintptr) bool {
	for v.off < v.n {
		chunk := min(v.n-v.off, maxBatch)
		r, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&v.msgs[v.off])), uintptr(chunk),
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

// ReadBatch implements BatchPacketConn with recvmmsg.
func (c *NHRPConn) ReadBatch(ds []Datagram) (int, error) {
	if len(ds) == 0 {
		return 0, nil
	}
	c.rmu.Lock()
	defer c.rmu.Unlock()
	v := &c.rv
	if v.fn == nil {
		v.fn = v.recv
	}
	v.grow(len(ds))
	for i := range ds {
		if cap(ds[i].B) == 0 {
			return 0, opErr("read NHRP packets", fmt.Sprintf("ifindex %d", c.ifindex), errors.New("empty buffer"))
		}
		b := ds[i].B[:cap(ds[i].B)]
		v.iovs[i].Base = &b[0]
		v.iovs[i].SetLen(len(b))
		v.msgs[i].hdr.Namelen = unix.SizeofSockaddrLinklayer
		v.msgs[i].hdr.Flags = 0
		v.msgs[i].len = 0
	}
	v.n, v.done, v.err = len(ds), 0, nil
	err := c.rc.Read(v.fn)
	v.release()
	if err == nil {
		err = v.err
	}
	if err != nil {
		return 0, fmt.Errorf("kernel: read NHRP packets: %w", err)
	}
	n := 0
	for i := range v.done {
		a := &v.addrs[i]
		if a.Halen != 4 {
			continue // not from an NBMA address: cannot be answered
		}
		if n != i { // swap, so that every buffer stays in ds exactly once
			ds[n].B, ds[i].B = ds[i].B, ds[n].B
		}
		ds[n].B = ds[n].B[:min(int(v.msgs[i].len), cap(ds[n].B))]
		ds[n].NBMA = netip.AddrFrom4([4]byte(a.Addr[:4]))
		n++
	}
	return n, nil
}

// WriteBatch implements BatchPacketConn with sendmmsg.
func (c *NHRPConn) WriteBatch(ds []Datagram) (int, error) {
	obj := fmt.Sprintf("ifindex %d", c.ifindex)
	c.wmu.Lock()
	defer c.wmu.Unlock()
	v := &c.wv
	if v.fn == nil {
		v.fn = v.send
	}
	v.grow(len(ds))
	n := 0
	var bad error
	for _, d := range ds {
		if !d.NBMA.Is4() || len(d.B) == 0 {
			if bad == nil {
				bad = fmt.Errorf("to %s: NBMA address must be IPv4 and the packet not empty", d.NBMA)
			}
			continue
		}
		v.addrs[n] = unix.RawSockaddrLinklayer{Family: unix.AF_PACKET, Protocol: htons(EtherTypeNHRP),
			Ifindex: int32(c.ifindex), Halen: 4}
		a := d.NBMA.As4()
		copy(v.addrs[n].Addr[:4], a[:])
		v.msgs[n].hdr.Namelen = unix.SizeofSockaddrLinklayer
		v.iovs[n].Base = &d.B[0]
		v.iovs[n].SetLen(len(d.B))
		n++
	}
	if n == 0 {
		return 0, opErr("send NHRP packets", obj, bad)
	}
	v.n, v.off, v.done, v.err = n, 0, 0, nil
	err := c.rc.Write(v.fn)
	v.release()
	if err == nil {
		err = v.err
	}
	if err == nil {
		err = bad
	}
	return v.done, opErr("send NHRP packets", obj, err)
}
