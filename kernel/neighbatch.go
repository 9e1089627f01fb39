package kernel

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// NeighborOp is one change of a neighbor batch: replace the entry Addr ->
// NBMA (PERMANENT when Permanent, else REACHABLE), or delete it.
type NeighborOp struct {
	Addr      netip.Addr
	NBMA      netip.Addr // replace only
	Permanent bool
	Delete    bool
}

func (o NeighborOp) String() string {
	if o.Delete {
		return "delete " + o.Addr.String()
	}
	return fmt.Sprintf("replace %s lladdr %s %s", o.Addr, o.NBMA, neighState(o.Permanent))
}

// NeighborBatcher applies many neighbor changes in one netlink transaction.
type NeighborBatcher interface {
	// ApplyNeighbors applies ops in order and returns one error per op
	// (nil: done). A delete of a missing entry is not an error. A refused
	// op does not stop the others; errors.Is(err, ErrResourceExhausted)
	// holds for a refusal for lack of room.
	ApplyNeighbors(ops []NeighborOp) []error
}

var _ NeighborBatcher = (*Kernel)(nil)

// maxNLBatch bounds the messages of one sendmsg: each refused message is
// answered with an error, and the answers of one transaction must fit the
// socket's receive buffer (an answer costs ~1 KiB of it) or the kernel
// drops them.
const maxNLBatch = 512

// batchRcvBuf is the batch socket's receive buffer (forced as root).
const batchRcvBuf = 4 << 20

// ApplyNeighbors implements NeighborBatcher: one sendmsg carries up to 512
// RTM_NEWNEIGH/RTM_DELNEIGH messages, each with its own sequence number;
// the kernel's errors are mapped back to their ops by sequence number, and
// the last message's acknowledgement says the others were applied
// (batchTransact).
func (k *Kernel) ApplyNeighbors(ops []NeighborOp) []error {
	errs := make([]error, len(ops))
	t, err := k.currentTunnel()
	if err != nil {
		for i := range errs {
			errs[i] = err
		}
		return errs
	}
	items := make([]neighItem, len(ops))
	for i, o := range ops {
		items[i] = neighItem{ifindex: t.ifindex, op: o}
	}
	applyItems(k, items, errs)
	for i, o := range ops {
		if errs[i] == nil {
			continue
		}
		if o.Delete {
			errs[i] = opErr("delete neighbor", neighObject(o.Addr, netip.Addr{}, t.name), errs[i])
		} else {
			errs[i] = opErr("replace neighbor", neighObject(o.Addr, o.NBMA, t.name), errs[i])
		}
	}
	return errs
}

// applyItems runs items through k's batch socket, opened on first use.
func applyItems[T batchItem](k *Kernel, items []T, errs []error) {
	k.batchMu.Lock()
	defer k.batchMu.Unlock()
	if err := k.openBatch(); err != nil {
		for i := range errs {
			errs[i] = err
		}
		return
	}
	batchApply(k.batch, items, errs)
}

// openBatch opens the batch socket once; k.batchMu held.
func (k *Kernel) openBatch() error {
	if k.batch != nil {
		return nil
	}
	c, err := openBatchSocket(k.cfg.NetNS)
	if err != nil {
		return fmt.Errorf("open batch socket: %w", err)
	}
	k.batch = &nlBatcher{conn: c}
	return nil
}

// batchItem is one request of a batch: neighbour changes here, tc changes
// in qos_batch.go. A value type keeps the generic batch code free of
// allocations.
type batchItem interface {
	// appendMsg appends the request, NLM_F_ACK set, with sequence number
	// seq; an error means the item is not sent.
	appendMsg(b []byte, seq uint32) ([]byte, error)
	// isDelete: the kernel's ENOENT counts as done (deleting a missing
	// object is not an error).
	isDelete() bool
}

// neighItem is an op on a device (the tunnel, or in tests any ifindex).
type neighItem struct {
	ifindex int
	op      NeighborOp
}

func (it neighItem) appendMsg(b []byte, seq uint32) ([]byte, error) {
	return appendNeighMsg(b, it, seq)
}

func (it neighItem) isDelete() bool { return it.op.Delete }

// nlConn is the netlink socket a batcher talks through; tests fake it.
type nlConn interface {
	send(b []byte) error
	recv(b []byte) (int, error)
	close() error
}

// nlBatcher sends batches of requests on one NETLINK_ROUTE socket and
// maps the acknowledgements back to them. Not safe for concurrent use.
type nlBatcher struct {
	conn nlConn
	seq  uint32
	out  []byte
	in   []byte
	done []bool
}

// Netlink message layout (linux/netlink.h, linux/neighbour.h).
const (
	nlmsgHdrLen = 16
	ndmsgLen    = 12
	rtaHdrLen   = 4
)

// batchApply runs items in order, in transactions of maxNLBatch, and
// stores each item's outcome in errs. The kernel carries on after a
// refused message, so one refusal costs only its own item.
func batchApply[T batchItem](b *nlBatcher, items []T, errs []error) {
	for off := 0; off < len(items); off += maxNLBatch {
		end := min(off+maxNLBatch, len(items))
		batchTransact(b, items[off:end], errs[off:end])
	}
}

// batchTransact sends one transaction and collects the kernel's answers.
// Only the last message asks for an acknowledgement: the kernel handles
// the messages of one datagram in order and answers each refused one with
// an error whether it asked or not (netlink_rcv_skb), so once the last
// message's answer is in, every earlier one without an error was applied.
// That spares the kernel an acknowledgement per entry and the reader the
// reading of it, and the receive buffer holds only refusals (in the lab's
// 10k burst the CPU per registration moved less than its run-to-run
// noise: 3 repetitions each, docs/linux.md "Batches"). Items
// that cannot be encoded fail without being sent; when the socket fails
// before the last answer, every item without an answer gets that error
// (the kernel may or may not have applied it: the caller's resync finds
// out).
func batchTransact[T batchItem](b *nlBatcher, items []T, errs []error) {
	base := b.seq + 1
	b.seq += uint32(len(items))
	b.out = b.out[:0]
	if cap(b.done) < len(items) {
		b.done = make([]bool, len(items))
	}
	done := b.done[:len(items)]
	last, lastOff := -1, 0
	for i, it := range items {
		off := len(b.out)
		var err error
		b.out, err = it.appendMsg(b.out, base+uint32(i))
		done[i] = err != nil
		errs[i] = err
		if err != nil {
			b.out = b.out[:off]
			continue
		}
		if last >= 0 {
			clearAckFlag(b.out[lastOff:off])
		}
		last, lastOff = i, off
	}
	if last < 0 {
		return
	}
	fail := func(err error) {
		for i := range items {
			if !done[i] {
				errs[i] = err
				done[i] = true
			}
		}
	}
	if err := b.conn.send(b.out); err != nil {
		fail(fmt.Errorf("send batch: %w", err))
		return
	}
	if len(b.in) == 0 {
		b.in = make([]byte, 64<<10)
	}
	for !done[last] {
		n, err := b.conn.recv(b.in)
		if err != nil {
			fail(fmt.Errorf("receive acknowledgements: %w", err))
			return
		}
		err = eachNLMsg(b.in[:n], func(h nlHeader, data []byte) {
			if h.typ != unix.NLMSG_ERROR {
				return
			}
			i := h.seq - base // wraps for stale sequence numbers
			if i >= uint32(len(items)) || done[i] {
				return // an answer of an earlier, abandoned transaction
			}
			done[i] = true
			errs[i] = ackError(data, items[i].isDelete())
		})
		if err != nil {
			fail(fmt.Errorf("parse acknowledgements: %w", err))
			return
		}
	}
	// The last message is answered: the ones before it without an error
	// were applied (errs[i] is nil for them; done is not read again).
}

// clearAckFlag takes NLM_F_ACK off the netlink message msg (its header
// first).
func clearAckFlag(msg []byte) {
	ne := binary.NativeEndian
	ne.PutUint16(msg[6:8], ne.Uint16(msg[6:8])&^unix.NLM_F_ACK)
}

// nlHeader is the part of struct nlmsghdr a reader needs.
type nlHeader struct {
	typ, flags uint16
	seq        uint32
}

// eachNLMsg calls fn for each netlink message in b (one datagram), with
// its payload; it allocates nothing.
func eachNLMsg(b []byte, fn func(h nlHeader, data []byte)) error {
	ne := binary.NativeEndian
	for len(b) >= nlmsgHdrLen {
		l := int(ne.Uint32(b[0:4]))
		if l < nlmsgHdrLen || l > len(b) {
			return fmt.Errorf("netlink message length %d of %d bytes", l, len(b))
		}
		fn(nlHeader{typ: ne.Uint16(b[4:6]), flags: ne.Uint16(b[6:8]), seq: ne.Uint32(b[8:12])}, b[nlmsgHdrLen:l])
		b = b[min(nlmAlign(l), len(b)):]
	}
	return nil
}

func nlmAlign(n int) int { return (n + 3) &^ 3 }

// appendNLHeader appends a struct nlmsghdr of size bytes (the whole
// message; 0 when the caller sets it once the message is built) with our
// pid left to the kernel.
func appendNLHeader(b []byte, size uint32, typ, flags uint16, seq uint32) []byte {
	ne := binary.NativeEndian
	b = ne.AppendUint32(b, size)
	b = ne.AppendUint16(b, typ)
	b = ne.AppendUint16(b, flags)
	b = ne.AppendUint32(b, seq)
	return ne.AppendUint32(b, 0) // pid: the kernel fills in ours
}

// appendNLAttr appends one netlink attribute, padded to 4 bytes.
func appendNLAttr(b []byte, typ uint16, v []byte) []byte {
	b = binary.NativeEndian.AppendUint16(b, uint16(rtaHdrLen+len(v)))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, v...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// nlaTypeMask is an attribute's type without NLA_F_NESTED and
// NLA_F_NET_BYTEORDER.
const nlaTypeMask = 0x3fff

// eachNLAttr calls fn for each netlink attribute in b with its type
// (flags masked off) and value; it reports false for a malformed
// attribute list and allocates nothing.
func eachNLAttr(b []byte, fn func(typ uint16, v []byte)) bool {
	ne := binary.NativeEndian
	for len(b) >= rtaHdrLen {
		l := int(ne.Uint16(b[0:2]))
		if l < rtaHdrLen || l > len(b) {
			return false
		}
		fn(ne.Uint16(b[2:4])&nlaTypeMask, b[rtaHdrLen:l])
		b = b[min(nlmAlign(l), len(b)):]
	}
	return true
}

// NeighborWalker visits a tunnel's neighbor entries without building a
// list: a resync that finds nothing to change allocates nothing.
type NeighborWalker interface {
	// WalkNeighbors calls fn for each IPv4 neighbor entry of the tunnel,
	// in the kernel's order; fn must not call back into the walker.
	WalkNeighbors(fn func(Neighbor)) error
}

var _ NeighborWalker = (*Kernel)(nil)

// WalkNeighbors implements NeighborWalker with one RTM_GETNEIGH dump on the
// batch socket.
func (k *Kernel) WalkNeighbors(fn func(Neighbor)) error {
	t, err := k.currentTunnel()
	if err != nil {
		return err
	}
	k.batchMu.Lock()
	defer k.batchMu.Unlock()
	err = k.openBatch()
	if err == nil {
		err = k.batch.dump(t.ifindex, fn)
	}
	if err != nil {
		return opErr("list neighbors", "dev "+t.name, err)
	}
	return nil
}

// dump lists the IPv4 neighbor table and calls fn for the entries of
// ifindex.
func (b *nlBatcher) dump(ifindex int, fn func(Neighbor)) error {
	b.seq++
	seq := b.seq
	b.out = appendNLHeader(b.out[:0], nlmsgHdrLen+ndmsgLen, unix.RTM_GETNEIGH, unix.NLM_F_REQUEST|unix.NLM_F_DUMP, seq)
	b.out = append(b.out, unix.AF_INET, 0, 0, 0)
	b.out = binary.NativeEndian.AppendUint32(b.out, uint32(int32(ifindex)))
	b.out = append(b.out, 0, 0, 0, 0)
	if err := b.conn.send(b.out); err != nil {
		return fmt.Errorf("send dump request: %w", err)
	}
	if len(b.in) == 0 {
		b.in = make([]byte, 64<<10)
	}
	var done bool
	var derr error
	for !done {
		n, err := b.conn.recv(b.in)
		if err != nil {
			return fmt.Errorf("receive dump: %w", err)
		}
		err = eachNLMsg(b.in[:n], func(h nlHeader, data []byte) {
			if h.seq != seq || done {
				return // a stale ack of an abandoned transaction
			}
			switch h.typ {
			case unix.NLMSG_DONE:
				done = true
			case unix.NLMSG_ERROR:
				done = true
				derr = ackError(data, false)
				if derr == nil {
					derr = errors.New("dump ended by an acknowledgement")
				}
			case unix.RTM_NEWNEIGH:
				if nb, ok := parseNeighMsg(data, ifindex); ok {
					fn(nb)
				}
			}
		})
		if err != nil {
			return fmt.Errorf("parse dump: %w", err)
		}
	}
	return derr
}

// parseNeighMsg decodes an RTM_NEWNEIGH payload (struct ndmsg and
// attributes) of an IPv4 entry on ifindex.
func parseNeighMsg(data []byte, ifindex int) (Neighbor, bool) {
	ne := binary.NativeEndian
	if len(data) < ndmsgLen || data[0] != unix.AF_INET || int(int32(ne.Uint32(data[4:8]))) != ifindex {
		return Neighbor{}, false
	}
	nb := Neighbor{State: NeighState(ne.Uint16(data[8:10]))}
	ok := eachNLAttr(data[ndmsgLen:], func(typ uint16, v []byte) {
		if len(v) != 4 {
			return
		}
		switch typ {
		case unix.NDA_DST:
			nb.Addr = netip.AddrFrom4([4]byte(v))
		case unix.NDA_LLADDR:
			nb.NBMA = netip.AddrFrom4([4]byte(v))
		}
	})
	if !ok {
		return Neighbor{}, false
	}
	return nb, nb.Addr.IsValid()
}

// ackError decodes struct nlmsgerr's error field: 0 is an ack.
func ackError(data []byte, del bool) error {
	if len(data) < 4 {
		return errors.New("short netlink error message")
	}
	code := int32(binary.NativeEndian.Uint32(data[:4]))
	if code == 0 {
		return nil
	}
	errno := syscall.Errno(-code)
	if del && errno == syscall.ENOENT {
		return nil // deleting a missing entry is not an error
	}
	return errno
}

// appendNeighMsg appends the RTM_NEWNEIGH (replace) or RTM_DELNEIGH message
// for it with sequence number seq.
func appendNeighMsg(b []byte, it neighItem, seq uint32) ([]byte, error) {
	o := it.op
	if !o.Addr.Is4() || (!o.Delete && !o.NBMA.Is4()) {
		return b, errors.New("addresses must be IPv4")
	}
	typ, flags := uint16(unix.RTM_DELNEIGH), uint16(unix.NLM_F_REQUEST|unix.NLM_F_ACK)
	state := uint16(0)
	size := nlmsgHdrLen + ndmsgLen + rtaHdrLen + 4
	if !o.Delete {
		typ = unix.RTM_NEWNEIGH
		flags |= unix.NLM_F_CREATE | unix.NLM_F_REPLACE
		state = uint16(neighState(o.Permanent))
		size += rtaHdrLen + 4
	}
	ne := binary.NativeEndian
	b = appendNLHeader(b, uint32(size), typ, flags, seq)
	// struct ndmsg: family, 3 pad bytes, ifindex, state, flags, type.
	b = append(b, unix.AF_INET, 0, 0, 0)
	b = ne.AppendUint32(b, uint32(int32(it.ifindex)))
	b = ne.AppendUint16(b, state)
	b = append(b, 0, 0)
	dst := o.Addr.As4()
	b = appendNLAttr(b, unix.NDA_DST, dst[:])
	if !o.Delete {
		nbma := o.NBMA.As4()
		b = appendNLAttr(b, unix.NDA_LLADDR, nbma[:])
	}
	return b, nil
}

// batchSocket is a NETLINK_ROUTE socket for batches: acks without the
// request's payload (NETLINK_CAP_ACK) and a receive buffer that holds a
// whole transaction's acks.
type batchSocket struct{ fd int }

func openBatchSocket(netNS int) (*batchSocket, error) {
	var fd int
	err := inNetNS(netNS, func() error {
		var serr error
		fd, serr = unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
		return serr
	})
	if err != nil {
		return nil, err
	}
	setup := func() error {
		if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
			return err
		}
		_ = unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_CAP_ACK, 1)
		if err := rcvBuf.set(fd, batchRcvBuf); err != nil {
			return err
		}
		// The kernel answers every request at once; a bound on the wait
		// keeps a lost ack from hanging the caller.
		tv := unix.Timeval{Sec: 10}
		return unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	}
	if err := setup(); err != nil {
		_ = unix.Close(fd)
		return nil, err
	}
	return &batchSocket{fd: fd}, nil
}

// send writes one datagram to the kernel (an unconnected netlink socket
// sends to port 0); it allocates nothing.
func (s *batchSocket) send(b []byte) error {
	for {
		_, err := unix.Write(s.fd, b)
		if err != unix.EINTR {
			return err
		}
	}
}

// recv reads one datagram from the kernel. Datagrams from another socket
// (a privileged process may unicast to ours) are dropped unread. It
// allocates nothing.
func (s *batchSocket) recv(b []byte) (int, error) {
	for {
		var sa unix.RawSockaddrNetlink
		salen := uint32(unix.SizeofSockaddrNetlink)
		n, _, errno := unix.Syscall6(unix.SYS_RECVFROM, uintptr(s.fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), 0,
			uintptr(unsafe.Pointer(&sa)), uintptr(unsafe.Pointer(&salen)))
		switch {
		case errno == unix.EINTR:
			continue
		case errno != 0:
			return 0, errno
		case sa.Pid != 0:
			continue
		}
		return int(n), nil
	}
}

func (s *batchSocket) close() error { return unix.Close(s.fd) }

// portID is the netlink port the kernel bound the socket to: the
// nlmsg_pid of the notifications its requests cause.
func (s *batchSocket) portID() (uint32, error) {
	sa, err := unix.Getsockname(s.fd)
	if err != nil {
		return 0, err
	}
	nl, ok := sa.(*unix.SockaddrNetlink)
	if !ok {
		return 0, fmt.Errorf("getsockname: %T, want a netlink address", sa)
	}
	return nl.Pid, nil
}
