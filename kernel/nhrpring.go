package kernel

import (
	"errors"
	"fmt"
	"net/netip"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The NHRP socket receives into a packet ring (PACKET_RX_RING, TPACKET_V2):
// the kernel writes each packet into the next free frame of memory shared
// with dmvpnd, and the reader takes what is there without a system call.
// A read starts after the runtime's poller cleared the socket's readiness
// and looks at the ring in memory: a packet written before the look is
// seen, one written after it marks the socket ready again, so the reader
// never sleeps on a queued packet and never needs the recvmmsg that only
// says "nothing more" (one per wake-up with recvmmsg).
const (
	// ringFrameSize is one frame: the frame header, the sender's address
	// and, from byte 80 (TPACKET_ALIGN(TPACKET2_HDRLEN) + 16 for a
	// datagram socket), up to 1968 bytes of packet. A longer packet (a
	// tunnel MTU beyond 1968) is truncated by the kernel: it is dropped
	// and counted (NHRPStats.Truncated).
	ringFrameSize = 2048
	// ringBlockSize is the unit the kernel allocates the ring in (32
	// frames).
	ringBlockSize = 64 << 10
	// ringAddrOff is where the frame's sockaddr_ll starts:
	// TPACKET_ALIGN(sizeof(struct tpacket2_hdr)).
	ringAddrOff = (unix.SizeofTpacket2Hdr + unix.TPACKET_ALIGNMENT - 1) &^ (unix.TPACKET_ALIGNMENT - 1)
)

// rxRing is the mapped ring and the reader's position in it.
type rxRing struct {
	mem    []byte
	frames int
	head   int
	// truncated counts packets longer than a frame (dropped): the
	// connection's counter, read without the reader's lock.
	truncated *atomic.Uint64
}

// ringFrames is how many frames a ring of size bytes has (at least one
// block).
func ringFrames(size int) int {
	blocks := max((size+ringBlockSize-1)/ringBlockSize, 1)
	return blocks * (ringBlockSize / ringFrameSize)
}

// setupRing switches fd to TPACKET_V2 and maps a receive ring of about
// size bytes.
func setupRing(fd, size int) (*rxRing, error) {
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VERSION, unix.TPACKET_V2); err != nil {
		return nil, fmt.Errorf("PACKET_VERSION: %w", err)
	}
	frames := ringFrames(size)
	req := unix.TpacketReq{
		Block_size: ringBlockSize,
		Block_nr:   uint32(frames / (ringBlockSize / ringFrameSize)),
		Frame_size: ringFrameSize,
		Frame_nr:   uint32(frames),
	}
	if err := unix.SetsockoptTpacketReq(fd, unix.SOL_PACKET, unix.PACKET_RX_RING, &req); err != nil {
		return nil, fmt.Errorf("PACKET_RX_RING of %d frames: %w", frames, err)
	}
	mem, err := unix.Mmap(fd, 0, frames*ringFrameSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("map the receive ring: %w", err)
	}
	return &rxRing{mem: mem, frames: frames, truncated: new(atomic.Uint64)}, nil
}

func (r *rxRing) close() error {
	if r == nil || r.mem == nil {
		return nil
	}
	err := unix.Munmap(r.mem)
	r.mem = nil
	return err
}

// frame returns frame i's header.
func (r *rxRing) frame(i int) *unix.Tpacket2Hdr {
	return (*unix.Tpacket2Hdr)(unsafe.Pointer(&r.mem[i*ringFrameSize]))
}

// status is frame i's status word, read atomically: the kernel sets it
// to TP_STATUS_USER after writing the frame.
func (r *rxRing) status(i int) uint32 {
	return atomic.LoadUint32(&r.frame(i).Status)
}

// release hands frame i back to the kernel.
func (r *rxRing) release(i int) {
	atomic.StoreUint32(&r.frame(i).Status, unix.TP_STATUS_KERNEL)
}

// take copies the ready frames from the head into ds (at most len(ds))
// and returns how many datagrams it filled: a frame with a truncated
// packet, or not from a 4-byte link-layer address, is handed back and
// not returned.
func (r *rxRing) take(ds []Datagram) (n int) {
	for n < len(ds) {
		i := r.head
		if r.status(i)&unix.TP_STATUS_USER == 0 {
			break
		}
		h := r.frame(i)
		base := i * ringFrameSize
		a := (*unix.RawSockaddrLinklayer)(unsafe.Pointer(&r.mem[base+ringAddrOff]))
		off, l := int(h.Mac), int(h.Snaplen)
		switch {
		case h.Len > h.Snaplen || off+l > ringFrameSize:
			r.truncated.Add(1)
		case a.Halen != 4:
			// Not from an NBMA address: cannot be answered.
		default:
			b := ds[n].B[:cap(ds[n].B)]
			if l > len(b) {
				r.truncated.Add(1)
				break
			}
			ds[n].B = b[:copy(b, r.mem[base+off:base+off+l])]
			ds[n].NBMA = netip.AddrFrom4([4]byte(a.Addr[:4]))
			ds[n].Received = time.Unix(int64(h.Sec), int64(h.Nsec))
			n++
		}
		r.release(i)
		r.head = (i + 1) % r.frames
	}
	return n
}

// errRingClosed is a read on a closed socket's ring.
var errRingClosed = errors.New("receive ring closed")
