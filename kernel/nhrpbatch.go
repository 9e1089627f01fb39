package kernel

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"
)

// Datagram is one NHRP packet and the NBMA address it came from or goes to.
type Datagram struct {
	B    []byte
	NBMA netip.Addr
	// Received is when the kernel received the packet (ReadBatch on the
	// NHRP socket; zero when it did not say).
	Received time.Time
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
	v.growControl(len(ds))
	for i := range ds {
		if cap(ds[i].B) == 0 {
			return 0, opErr("read NHRP packets", fmt.Sprintf("ifindex %d", c.ifindex), errors.New("empty buffer"))
		}
		b := ds[i].B[:cap(ds[i].B)]
		v.iovs[i].Base = &b[0]
		v.iovs[i].SetLen(len(b))
		v.msgs[i].hdr.Namelen = unix.SizeofSockaddrLinklayer
		v.msgs[i].hdr.Flags = 0
		v.msgs[i].hdr.Control = &v.ctl[i][0]
		v.msgs[i].hdr.SetControllen(len(v.ctl[i]))
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
		ds[n].Received = v.received(i)
		n++
	}
	return n, nil
}

// WriteBatch implements BatchPacketConn with sendmmsg.
func (c *NHRPConn) WriteBatch(ds []Datagram) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	v := &c.wv
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
		v.setSend(n, d.B, d.NBMA, EtherTypeNHRP, int32(c.ifindex))
		n++
	}
	if n == 0 {
		return 0, c.sendErr(bad)
	}
	v.startSend(n)
	err := c.rc.Write(v.fn)
	v.release()
	if err == nil {
		err = v.err
	}
	if err == nil {
		err = bad
	}
	return v.done, c.sendErr(err)
}

// sendErr is WriteBatch's error for err (nil for nil: the error's text
// is built only for a failure, not per batch sent).
func (c *NHRPConn) sendErr(err error) error {
	if err == nil {
		return nil
	}
	return opErr("send NHRP packets", fmt.Sprintf("ifindex %d", c.ifindex), err)
}
