package kernel

import (
	"encoding/binary"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// fakeRing is a ring in ordinary memory laid out as the kernel writes a
// TPACKET_V2 receive ring (frame header, sockaddr_ll at ringAddrOff,
// packet at tp_mac): the reader's side is tested here, the kernel's in
// the lab (TestPrivNHRPRingWakeup, TestPrivNHRPBatch).
func fakeRing(frames int) *rxRing {
	return &rxRing{mem: make([]byte, frames*ringFrameSize), frames: frames, truncated: new(atomic.Uint64)}
}

// put writes packet b from a link-layer address of halen bytes (nbma's
// first ones) into frame i and hands it to the reader. snap is the
// captured length (less than len(b): truncated).
func (r *rxRing) put(t *testing.T, i int, b []byte, nbma netip.Addr, halen int, snap int, at time.Time) {
	t.Helper()
	const dataOff = 80 // TPACKET_ALIGN(TPACKET2_HDRLEN) + 16 for SOCK_DGRAM
	f := r.mem[i*ringFrameSize : (i+1)*ringFrameSize]
	copy(f[dataOff:], b[:snap])
	a := f[ringAddrOff:]
	binary.NativeEndian.PutUint16(a[0:], unix.AF_PACKET)
	a[11] = byte(halen)
	n4 := nbma.As4()
	copy(a[12:], n4[:])
	h := r.frame(i)
	h.Len, h.Snaplen, h.Mac, h.Net = uint32(len(b)), uint32(snap), dataOff, dataOff
	h.Sec, h.Nsec = uint32(at.Unix()), uint32(at.Nanosecond())
	h.Status = unix.TP_STATUS_USER | unix.TP_STATUS_TS_SOFTWARE
}

func TestRingTake(t *testing.T) {
	r := fakeRing(4)
	at := time.Unix(1_800_000_000, 123456789)
	a, b := netip.MustParseAddr("198.51.100.2"), netip.MustParseAddr("198.51.100.3")
	r.put(t, 0, []byte("first"), a, 4, 5, at)
	r.put(t, 1, make([]byte, 3000)[:1968], b, 4, 1968, at) // fills the frame
	r.put(t, 2, []byte("truncated"), a, 4, 4, at)
	r.put(t, 3, []byte("not nbma"), a, 6, 8, at)
	ds := make([]Datagram, 8)
	for i := range ds {
		ds[i].B = make([]byte, 2048)
	}
	if n := r.take(ds); n != 2 {
		t.Fatalf("take returned %d datagrams, want 2 (one truncated, one not from an NBMA address)", n)
	}
	if string(ds[0].B) != "first" || ds[0].NBMA != a || !ds[0].Received.Equal(at) {
		t.Errorf("datagram 0: %q from %s at %v, want \"first\" from %s at %v", ds[0].B, ds[0].NBMA, ds[0].Received, a, at)
	}
	if len(ds[1].B) != 1968 || ds[1].NBMA != b {
		t.Errorf("datagram 1: %d bytes from %s, want 1968 from %s", len(ds[1].B), ds[1].NBMA, b)
	}
	if got := r.truncated.Load(); got != 1 {
		t.Errorf("truncated = %d, want 1", got)
	}
	for i := range 4 {
		if s := r.status(i); s != unix.TP_STATUS_KERNEL {
			t.Errorf("frame %d status %#x after take, want it handed back", i, s)
		}
	}
	if r.head != 0 {
		t.Errorf("head %d after the whole ring, want 0 (wrapped)", r.head)
	}
	if n := r.take(ds); n != 0 {
		t.Errorf("take of an empty ring returned %d", n)
	}
	// The reader stops at the room it has and resumes where it stopped,
	// across the end of the ring.
	for i, s := range []string{"w", "x", "y"} {
		r.put(t, i, []byte(s), a, 4, 1, at)
	}
	if n := r.take(ds[:2]); n != 2 || string(ds[0].B) != "w" || string(ds[1].B) != "x" {
		t.Fatalf("take of 2: %d, %q %q", n, ds[0].B, ds[1].B)
	}
	r.put(t, 3, []byte("z"), a, 4, 1, at)
	r.put(t, 0, []byte("again"), a, 4, 5, at)
	ds[0].B, ds[1].B, ds[2].B = make([]byte, 64), make([]byte, 64), make([]byte, 64)
	if n := r.take(ds[:3]); n != 3 || string(ds[0].B) != "y" || string(ds[1].B) != "z" || string(ds[2].B) != "again" {
		t.Fatalf("take after the wrap: %d, %q %q %q", n, ds[0].B, ds[1].B, ds[2].B)
	}
	// A buffer too small for its packet: dropped, counted, not copied.
	r.put(t, 1, []byte("longer than four"), a, 4, 16, at)
	small := []Datagram{{B: make([]byte, 4)}}
	if n := r.take(small); n != 0 || r.truncated.Load() != 2 {
		t.Errorf("a packet longer than its buffer: take %d, truncated %d; want 0 and 2", n, r.truncated.Load())
	}
}

func TestRingFrames(t *testing.T) {
	for _, c := range []struct{ size, want int }{{0, 32}, {1, 32}, {64 << 10, 32}, {64<<10 + 1, 64}, {8 << 20, 4096}} {
		if got := ringFrames(c.size); got != c.want {
			t.Errorf("ringFrames(%d) = %d, want %d", c.size, got, c.want)
		}
	}
}
