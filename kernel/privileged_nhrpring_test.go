package kernel

import (
	"net/netip"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
)

// TestPrivNHRPRingWakeup: a packet that reaches the ring while nothing
// reads is returned by the next read at once, even when the runtime's
// poller has taken its readiness edge meanwhile (the test sleeps: the idle
// scheduler waits in the poller and consumes it, and the read clears the
// readiness before it looks). A reader that waited for an edge first,
// rather than looking at the ring, would sleep until the next packet (as
// a recvmmsg reader that skipped its first call did, fixed in cd1c898;
// a ring reader made to wait first fails here). Each read is bounded:
// readWithin closes the socket after its timeout.
func TestPrivNHRPRingWakeup(t *testing.T) {
	hub, spokes := hubAndSpokes(t, 1)
	hc, sc := hub.listenNHRP(t, 0), spokes[0].listenNHRP(t, 0)
	hubNBMA := netip.MustParseAddr("172.16.1.1")
	// Payloads of at least 4 bytes: the kernel's GRE receive drops a
	// packet with fewer than 12 bytes after the outer IP header (a keyed
	// GRE header is 8).
	for _, p := range []string{"packet one", "packet two", "packet three"} {
		if _, err := sc.WriteTo([]byte(p), hubNBMA); err != nil {
			t.Fatal(err)
		}
		// Nothing reads now: the packet's edge is reported to no waiter.
		time.Sleep(100 * time.Millisecond)
		got, from := readWithin(t, hc, 2*time.Second)
		if string(got) != p || from != spokes[0].nbma {
			t.Fatalf("read %q from %s, want %q from %s", got, from, p, spokes[0].nbma)
		}
	}
	// And a read that waits is woken by the next packet.
	go func() {
		time.Sleep(200 * time.Millisecond)
		_, _ = sc.WriteTo([]byte("packet four"), hubNBMA)
	}()
	if got, _ := readWithin(t, hc, 5*time.Second); string(got) != "packet four" {
		t.Fatalf("read %q while waiting, want \"packet four\"", got)
	}
}

// TestPrivNHRPRingTruncated: a packet longer than a ring frame (here a
// spoke tunnel with a 4000-byte MTU over a 5000-byte underlay) is cut by the kernel to the frame; the reader drops it, counts
// it in NHRPStats.Truncated and returns the next packet.
func TestPrivNHRPRingTruncated(t *testing.T) {
	hub, spokes := hubAndSpokes(t, 1)
	s := spokes[0]
	mtu := func(h *netlink.Handle, name string, ifindex, mtu int) {
		t.Helper()
		link, err := h.LinkByIndex(ifindex)
		if name != "" {
			link, err = h.LinkByName(name)
		}
		if err == nil {
			err = h.LinkSetMTU(link, mtu)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	// The underlay carries the long GRE packet whole (GRE sets DF).
	mtu(s.h, "s1", 0, 5000)
	mtu(hub.h, "h1", 0, 5000)
	mtu(s.h, "", s.ifindex, 4000)
	hc, sc := hub.listenNHRP(t, 0), s.listenNHRP(t, 0)
	hubNBMA := netip.MustParseAddr("172.16.1.1")
	long := make([]byte, 3000)
	for _, p := range [][]byte{long, []byte("after the long one")} {
		if _, err := sc.WriteTo(p, hubNBMA); err != nil {
			t.Fatal(err)
		}
	}
	got, _ := readWithin(t, hc, 5*time.Second)
	if string(got) != "after the long one" {
		t.Fatalf("read %d bytes %q, want the packet after the truncated one", len(got), got)
	}
	st, err := hc.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Packets != 2 || st.Truncated != 1 || st.Drops != 0 {
		t.Errorf("stats %+v, want 2 packets, 1 truncated, no drops", st)
	}
}
