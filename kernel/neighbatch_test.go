package kernel

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"syscall"
	"testing"

	"github.com/dmvpnd/dmvpnd/e2e/golden"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// TestNeighMsgEncoding pins the wire form of a replace and a delete: the
// golden file is hex, one message per line.
func TestNeighMsgEncoding(t *testing.T) {
	items := []neighItem{
		{ifindex: 7, op: NeighborOp{Addr: netip.MustParseAddr("10.0.0.2"), NBMA: netip.MustParseAddr("198.51.100.2"), Permanent: true}},
		{ifindex: 7, op: NeighborOp{Addr: netip.MustParseAddr("10.0.0.3"), NBMA: netip.MustParseAddr("198.51.100.3")}},
		{ifindex: 7, op: NeighborOp{Addr: netip.MustParseAddr("10.0.0.4"), Delete: true}},
	}
	var lines []string
	for i, it := range items {
		b, err := appendNeighMsg(nil, it, uint32(100+i))
		if err != nil {
			t.Fatal(err)
		}
		msgs, err := syscall.ParseNetlinkMessage(b)
		if err != nil || len(msgs) != 1 || int(msgs[0].Header.Len) != len(b) {
			t.Fatalf("item %d: %d messages, err %v: not one well-formed netlink message", i, len(msgs), err)
		}
		lines = append(lines, hex.EncodeToString(b))
	}
	got := strings.Join(lines, "\n") + "\n"
	golden.File(t, "neighbatch.golden", got)
	if _, err := appendNeighMsg(nil, neighItem{op: NeighborOp{Addr: netip.MustParseAddr("2001:db8::1"), NBMA: netip.MustParseAddr("192.0.2.1")}}, 1); err == nil {
		t.Error("an IPv6 neighbor was encoded")
	}
}

// fakeNL plays the kernel's side of a batch: it decodes each sent message,
// asks refuse for its outcome and queues the acks in reverse order, several
// per datagram, preceded by a stale ack of an earlier transaction.
type fakeNL struct {
	refuse func(typ uint16, dst netip.Addr) syscall.Errno
	// refuseTC decides for tc messages (RTM_*QDISC, *TCLASS, *TFILTER) by
	// the tcmsg's handle.
	refuseTC func(typ uint16, handle uint32) syscall.Errno
	sends    int
	queue    [][]byte
	sendErr  error
	recvErr  error // returned once the queue is empty
	perRead  int
	deliver  int // datagrams delivered per send before the rest is lost (0: all)
	dump     func(seq uint32) [][]byte
	// askedAck: sequence numbers of the messages sent with NLM_F_ACK;
	// lastSeqs: that of each datagram's last message.
	askedAck, lastSeqs []uint32
}

func (f *fakeNL) send(b []byte) error {
	if f.sendErr != nil {
		return f.sendErr
	}
	f.sends++
	msgs, err := syscall.ParseNetlinkMessage(b)
	if err != nil {
		return err
	}
	if msgs[0].Header.Type == unix.RTM_GETNEIGH {
		f.queue = append(f.queue, f.dump(msgs[0].Header.Seq)...)
		return nil
	}
	var acks [][]byte
	acks = append(acks, ackMsg(msgs[0].Header.Seq-1, 0)) // stale
	for _, m := range msgs {
		var code syscall.Errno
		switch {
		case m.Header.Type >= unix.RTM_NEWQDISC && m.Header.Type <= unix.RTM_GETTFILTER:
			if f.refuseTC != nil {
				code = f.refuseTC(m.Header.Type, binary.NativeEndian.Uint32(m.Data[8:12]))
			}
		case f.refuse != nil:
			code = f.refuse(m.Header.Type, netip.AddrFrom4([4]byte(m.Data[ndmsgLen+rtaHdrLen:ndmsgLen+rtaHdrLen+4])))
		}
		// As netlink_rcv_skb: in order, an error always, success only
		// when asked for.
		if m.Header.Flags&unix.NLM_F_ACK != 0 {
			f.askedAck = append(f.askedAck, m.Header.Seq)
		}
		if code != 0 || m.Header.Flags&unix.NLM_F_ACK != 0 {
			acks = append(acks, ackMsg(m.Header.Seq, code))
		}
	}
	f.lastSeqs = append(f.lastSeqs, msgs[len(msgs)-1].Header.Seq)
	per := max(f.perRead, 1)
	for len(acks) > 0 {
		n := min(per, len(acks))
		var d []byte
		for _, a := range acks[:n] {
			d = append(d, a...)
		}
		f.queue = append(f.queue, d)
		acks = acks[n:]
	}
	if f.deliver > 0 {
		f.queue = f.queue[:f.deliver]
	}
	return nil
}

func (f *fakeNL) recv(b []byte) (int, error) {
	if len(f.queue) == 0 {
		if f.recvErr != nil {
			return 0, f.recvErr
		}
		return 0, errors.New("fakeNL: nothing queued")
	}
	d := f.queue[0]
	f.queue = f.queue[1:]
	return copy(b, d), nil
}

func (f *fakeNL) close() error { return nil }

func ackMsg(seq uint32, code syscall.Errno) []byte {
	ne := binary.NativeEndian
	var b []byte
	b = ne.AppendUint32(b, nlmsgHdrLen+4+nlmsgHdrLen)
	b = ne.AppendUint16(b, unix.NLMSG_ERROR)
	b = ne.AppendUint16(b, 0)
	b = ne.AppendUint32(b, seq)
	b = ne.AppendUint32(b, 0)
	b = ne.AppendUint32(b, uint32(-int32(code)))
	return append(b, make([]byte, nlmsgHdrLen)...) // the request's header (NETLINK_CAP_ACK)
}

func addrN(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}) }

func TestNeighBatchAckMapping(t *testing.T) {
	replace := func(n int) []neighItem {
		out := make([]neighItem, n)
		for i := range out {
			out[i] = neighItem{ifindex: 7, op: NeighborOp{Addr: addrN(i), NBMA: netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), Permanent: true}}
		}
		return out
	}
	refuseAddr := func(a netip.Addr, e syscall.Errno) func(uint16, netip.Addr) syscall.Errno {
		return func(_ uint16, d netip.Addr) syscall.Errno {
			if d == a {
				return e
			}
			return 0
		}
	}
	tests := []struct {
		name      string
		items     []neighItem
		nl        *fakeNL
		wantSends int
		want      map[int]string // index -> error text; others nil
	}{
		{
			name:  "one refused in the middle",
			items: replace(9),
			nl:    &fakeNL{refuse: refuseAddr(addrN(4), syscall.ENOBUFS), perRead: 3},
			want:  map[int]string{4: "no buffer space available"}, wantSends: 1,
		},
		{
			name:  "the last one refused: its error is its answer",
			items: replace(5),
			nl:    &fakeNL{refuse: refuseAddr(addrN(4), syscall.ENOBUFS)},
			want:  map[int]string{4: "no buffer space available"}, wantSends: 1,
		},
		{
			name:  "chunks of maxNLBatch, refusal in the second",
			items: replace(maxNLBatch + 10),
			nl:    &fakeNL{refuse: refuseAddr(addrN(maxNLBatch+3), syscall.ENODEV), perRead: 50},
			want:  map[int]string{maxNLBatch + 3: "no such device"}, wantSends: 2,
		},
		{
			name: "delete of a missing entry succeeds, invalid op fails unsent",
			items: []neighItem{
				{ifindex: 7, op: NeighborOp{Addr: addrN(1), Delete: true}},
				{ifindex: 7, op: NeighborOp{Addr: netip.MustParseAddr("2001:db8::1"), NBMA: addrN(2)}},
				{ifindex: 7, op: NeighborOp{Addr: addrN(3), NBMA: addrN(9)}},
			},
			nl: &fakeNL{refuse: func(typ uint16, _ netip.Addr) syscall.Errno {
				return map[bool]syscall.Errno{true: syscall.ENOENT}[typ == unix.RTM_DELNEIGH]
			}},
			want: map[int]string{1: "addresses must be IPv4"}, wantSends: 1,
		},
		{
			name:  "socket fails: every unacknowledged item fails",
			items: replace(3),
			nl:    &fakeNL{sendErr: syscall.EPERM},
			want: map[int]string{
				0: "send batch: operation not permitted",
				1: "send batch: operation not permitted",
				2: "send batch: operation not permitted",
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := &nlBatcher{conn: tc.nl, seq: 41}
			errs := make([]error, len(tc.items))
			batchApply(b, tc.items, errs)
			got := map[int]string{}
			for i, err := range errs {
				if err != nil {
					got[i] = err.Error()
				}
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("errors (-want +got):\n%s", d)
			}
			if tc.nl.sends != tc.wantSends {
				t.Errorf("%d sendmsg calls, want %d", tc.nl.sends, tc.wantSends)
			}
			if len(tc.nl.queue) != 0 {
				t.Errorf("%d datagrams left unread", len(tc.nl.queue))
			}
			// Only each datagram's last message asks for an
			// acknowledgement.
			if d := cmp.Diff(tc.nl.lastSeqs, tc.nl.askedAck); d != "" {
				t.Errorf("messages sent with NLM_F_ACK (-each datagram's last +asked):\n%s", d)
			}
		})
	}
}

// TestNeighBatchLostAcks: when the socket fails before the last message's
// answer, the items already answered keep their outcome and the rest fail
// with the error (whether the kernel applied them is unknown).
func TestNeighBatchLostAcks(t *testing.T) {
	// The stale ack and item 1's refusal arrive, then the socket reports
	// an overrun instead of item 3's acknowledgement.
	nl := &fakeNL{perRead: 1, recvErr: syscall.ENOBUFS, deliver: 2, refuse: func(_ uint16, d netip.Addr) syscall.Errno {
		return map[bool]syscall.Errno{true: syscall.ENODEV}[d == addrN(1)]
	}}
	b := &nlBatcher{conn: nl}
	items := []neighItem{
		{ifindex: 7, op: NeighborOp{Addr: addrN(0), NBMA: addrN(100)}},
		{ifindex: 7, op: NeighborOp{Addr: addrN(1), NBMA: addrN(101)}},
		{ifindex: 7, op: NeighborOp{Addr: addrN(2), NBMA: addrN(102)}},
		{ifindex: 7, op: NeighborOp{Addr: addrN(3), NBMA: addrN(103)}},
	}
	errs := make([]error, len(items))
	batchApply(b, items, errs)
	var got []string
	for _, err := range errs {
		got = append(got, errString(err))
	}
	lost := "receive acknowledgements: no buffer space available"
	want := []string{lost, "no such device", lost, lost}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
	if !errors.Is(&OpError{Err: errs[0]}, ErrResourceExhausted) {
		t.Error("a lost ack for lack of room is not ErrResourceExhausted")
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// neighMsg is an RTM_NEWNEIGH as a dump carries it.
func neighMsg(seq uint32, family byte, ifindex int, state uint16, dst, lladdr []byte) []byte {
	ne := binary.NativeEndian
	var attrs []byte
	for _, a := range []struct {
		typ uint16
		v   []byte
	}{{unix.NDA_DST, dst}, {unix.NDA_LLADDR, lladdr}} {
		if a.v == nil {
			continue
		}
		attrs = ne.AppendUint16(attrs, uint16(rtaHdrLen+len(a.v)))
		attrs = ne.AppendUint16(attrs, a.typ)
		attrs = append(attrs, a.v...)
		for len(attrs)%4 != 0 {
			attrs = append(attrs, 0)
		}
	}
	var b []byte
	b = ne.AppendUint32(b, uint32(nlmsgHdrLen+ndmsgLen+len(attrs)))
	b = ne.AppendUint16(b, unix.RTM_NEWNEIGH)
	b = ne.AppendUint16(b, unix.NLM_F_MULTI)
	b = ne.AppendUint32(b, seq)
	b = ne.AppendUint32(b, 0)
	b = append(b, family, 0, 0, 0)
	b = ne.AppendUint32(b, uint32(ifindex))
	b = ne.AppendUint16(b, state)
	b = append(b, 0, 0)
	return append(b, attrs...)
}

func doneMsg(seq uint32) []byte {
	ne := binary.NativeEndian
	var b []byte
	b = ne.AppendUint32(b, nlmsgHdrLen+4)
	b = ne.AppendUint16(b, unix.NLMSG_DONE)
	b = ne.AppendUint16(b, unix.NLM_F_MULTI)
	b = ne.AppendUint32(b, seq)
	b = ne.AppendUint32(b, 0)
	return ne.AppendUint32(b, 0)
}

// TestNeighDump: the dump keeps the tunnel's IPv4 entries (with or without
// lladdr), skips other devices, other families and stale messages, and
// allocates nothing.
func TestNeighDump(t *testing.T) {
	v4 := func(s string) []byte { a := netip.MustParseAddr(s).As4(); return a[:] }
	nl := &fakeNL{dump: func(seq uint32) [][]byte {
		var d1, d2 []byte
		d1 = append(d1, ackMsg(seq-1, 0)...) // stale
		d1 = append(d1, neighMsg(seq, unix.AF_INET, 7, uint16(NeighPermanent), v4("10.0.0.2"), v4("198.51.100.2"))...)
		d1 = append(d1, neighMsg(seq, unix.AF_INET, 8, uint16(NeighPermanent), v4("10.0.0.3"), v4("198.51.100.3"))...)
		d2 = append(d2, neighMsg(seq, unix.AF_INET6, 7, uint16(NeighReachable), netip.MustParseAddr("2001:db8::1").AsSlice(), nil)...)
		d2 = append(d2, neighMsg(seq, unix.AF_INET, 7, uint16(NeighIncomplete), v4("10.0.0.4"), nil)...)
		d2 = append(d2, doneMsg(seq)...)
		return [][]byte{d1, d2}
	}}
	b := &nlBatcher{conn: nl}
	var got []string
	if err := b.dump(7, func(n Neighbor) { got = append(got, fmtNeighbor(n)) }); err != nil {
		t.Fatal(err)
	}
	want := []string{"10.0.0.2 lladdr 198.51.100.2 PERMANENT", "10.0.0.4 lladdr invalid IP INCOMPLETE"}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
	count := 0
	allocs := testing.AllocsPerRun(20, func() {
		if err := b.dump(7, func(Neighbor) { count++ }); err != nil {
			t.Fatal(err)
		}
	})
	if count != 2*21 {
		t.Errorf("%d entries in 21 dumps, want 2 each", count)
	}
	// The fake socket's own encoding allocates; the dump must add nothing.
	req := append([]byte(nil), b.out...) // the dump request
	buf := make([]byte, 64<<10)
	drain := func() {
		_ = nl.send(req)
		for len(nl.queue) > 0 {
			_, _ = nl.recv(buf)
		}
	}
	if base := testing.AllocsPerRun(20, drain); allocs > base {
		t.Errorf("a dump allocates %.0f times beyond the fake socket's %.0f", allocs, base)
	}
}

func fmtNeighbor(n Neighbor) string { return fmt.Sprintf("%s lladdr %s %s", n.Addr, n.NBMA, n.State) }
