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

func TestFillCopies(t *testing.T) {
	var v mmsgVec
	pkt := testPacket()
	dsts := nbmas(3)
	if err := fillCopies(&v, pkt, dsts, 7); err != nil {
		t.Fatal(err)
	}
	if v.iovs[0].Base != &pkt[0] || v.iovs[0].Len != uint64(len(pkt)) {
		t.Errorf("iov = %+v, want the packet", v.iovs[0])
	}
	if v.n != 3 || v.off != 0 || v.done != 0 || v.fn == nil {
		t.Fatalf("batch n=%d off=%d done=%d fn set %v", v.n, v.off, v.done, v.fn != nil)
	}
	for i, d := range dsts {
		a := v.addrs[i]
		if a.Family != unix.AF_PACKET || a.Protocol != htons(unix.ETH_P_IP) || a.Ifindex != 7 || a.Halen != 4 ||
			netip.AddrFrom4([4]byte(a.Addr[:4])) != d {
			t.Errorf("addr %d = %+v, want %s", i, a, d)
		}
		h := v.msgs[i].hdr
		if h.Name != (*byte)(unsafe.Pointer(&v.addrs[i])) || h.Namelen != unix.SizeofSockaddrLinklayer || h.Iov != &v.iovs[0] || h.Iovlen != 1 {
			t.Errorf("msg %d = %+v", i, h)
		}
	}
	// A shorter set reuses the buffers.
	first := &v.msgs[0]
	if err := fillCopies(&v, pkt, dsts[:1], 7); err != nil || &v.msgs[0] != first || v.n != 1 {
		t.Fatalf("refill: err %v, n %d, buffers reallocated %v", err, v.n, &v.msgs[0] != first)
	}
	v.release()
	if v.iovs[0].Base != nil {
		t.Error("release kept the packet")
	}
	if err := fillCopies(&v, []byte{0x60, 0}, dsts, 7); err == nil {
		t.Error("IPv6 packet accepted")
	}
	if err := fillCopies(&v, pkt, []netip.Addr{netip.MustParseAddr("2001:db8::1")}, 7); err == nil {
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
			var v mmsgVec
			pkt, dsts := testPacket(), nbmas(n)
			if err := fillCopies(&v, pkt, dsts, 7); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				_ = fillCopies(&v, pkt, dsts, 7)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/copy")
			b.ReportMetric(float64(testing.AllocsPerRun(10, func() { _ = fillCopies(&v, pkt, dsts, 7) }))/float64(n), "allocs/copy")
		})
	}
}
