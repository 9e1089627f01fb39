package kernel

import (
	"fmt"
	"net/netip"
	"runtime"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

func testPacket() []byte {
	p := make([]byte, 64)
	p[0] = 0x45
	copy(p[16:20], []byte{224, 0, 0, 5})
	return p
}

func nbmas(n int) []netip.Addr {
	out := make([]netip.Addr, n)
	for i := range out {
		out[i] = netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)})
	}
	return out
}

func TestMmsgBatchFill(t *testing.T) {
	var b mmsgBatch
	b.ifindex = 7
	pkt := testPacket()
	dsts := nbmas(3)
	if err := b.fill(pkt, dsts); err != nil {
		t.Fatal(err)
	}
	if b.n != 3 || b.iov.Base != &pkt[0] || b.iov.Len != uint64(len(pkt)) {
		t.Fatalf("batch n=%d iov=%+v", b.n, b.iov)
	}
	for i, d := range dsts {
		a := b.addrs[i]
		if a.Family != unix.AF_PACKET || a.Protocol != htons(unix.ETH_P_IP) || a.Ifindex != 7 || a.Halen != 4 ||
			netip.AddrFrom4([4]byte(a.Addr[:4])) != d {
			t.Errorf("addr %d = %+v, want %s", i, a, d)
		}
		h := b.msgs[i].hdr
		if h.Name != (*byte)(unsafe.Pointer(&b.addrs[i])) || h.Namelen != unix.SizeofSockaddrLinklayer || h.Iov != &b.iov || h.Iovlen != 1 {
			t.Errorf("msg %d = %+v", i, h)
		}
	}
	// A shorter set reuses the buffers.
	first := &b.msgs[0]
	if err := b.fill(pkt, dsts[:1]); err != nil || &b.msgs[0] != first || b.n != 1 {
		t.Fatalf("refill: err %v, n %d, buffers reallocated %v", err, b.n, &b.msgs[0] != first)
	}
	b.release()
	if b.iov.Base != nil {
		t.Error("release kept the packet")
	}
	if err := b.fill([]byte{0x60, 0}, dsts); err == nil {
		t.Error("IPv6 packet accepted")
	}
	if err := b.fill(pkt, []netip.Addr{netip.MustParseAddr("2001:db8::1")}); err == nil {
		t.Error("IPv6 NBMA accepted")
	}
	if runtime.GOARCH == "amd64" && unsafe.Sizeof(mmsghdr{}) != 64 { // struct mmsghdr on x86_64
		t.Errorf("mmsghdr is %d bytes, want 64", unsafe.Sizeof(mmsghdr{}))
	}
}

// BenchmarkMulticastBatch measures preparing the sendmmsg messages of one
// packet for n peers (the kernel's copy and transmit are not included; the
// lab's TestPrivMulticast sends through the real socket).
func BenchmarkMulticastBatch(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("peers=%d", n), func(b *testing.B) {
			var mb mmsgBatch
			pkt, dsts := testPacket(), nbmas(n)
			if err := mb.fill(pkt, dsts); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				_ = mb.fill(pkt, dsts)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/copy")
			b.ReportMetric(float64(testing.AllocsPerRun(10, func() { _ = mb.fill(pkt, dsts) }))/float64(n), "allocs/copy")
		})
	}
}
