package kernel

import (
	"fmt"
	"net/netip"
	"testing"
	"time"
)

// TestPrivNHRPBurstAfterReboot sends a burst of registrations to a hub socket
// that nobody reads (a hub busy starting up): with the default receive buffer
// none is dropped, while a socket with a small buffer on the same tunnel
// drops most of them.
func TestPrivNHRPBurstAfterReboot(t *testing.T) {
	hub, spokes := hubAndSpokes(t, 1)
	big := hub.listenNHRP(t, 0)
	small := hub.listenNHRP(t, 64<<10)
	tx := spokes[0].listenNHRP(t, 0)

	const total, batch = 4000, 400
	pkt := make([]byte, 96) // the size of a registration request with one CIE
	hubNBMA := netip.MustParseAddr("172.16.1.1")
	start := time.Now()
	var bigStats NHRPStats
	for sent := 0; sent < total; {
		for i := 0; i < batch; i++ {
			pkt[0], pkt[1] = byte(sent>>8), byte(sent)
			if _, err := tx.WriteTo(pkt, hubNBMA); err != nil {
				t.Fatal(err)
			}
			sent++
		}
		// Pace by progress (not time) so that the softirq backlog, a
		// different limit, never overflows.
		waitFor(t, fmt.Sprintf("%d packets at the hub socket", sent), 60*time.Second, func() (bool, error) {
			st, err := big.Stats()
			bigStats = st
			return st.Packets >= uint64(sent), err
		})
	}
	elapsed := time.Since(start)
	smallStats, err := small.Stats()
	if err != nil {
		t.Fatal(err)
	}
	rb, _ := big.RcvBuf()
	t.Logf("%d packets in %s; default socket (SO_RCVBUF %d): %+v; 64 KiB socket: %+v", total, elapsed, rb, bigStats, smallStats)
	if bigStats.Packets != total || bigStats.Drops != 0 {
		t.Errorf("default buffer: %+v, want %d packets and no drops", bigStats, total)
	}
	if smallStats.Drops == 0 {
		t.Errorf("the 64 KiB socket dropped nothing (%+v): the test does not exercise the buffer", smallStats)
	}
	// Every queued packet can still be read, each once. Not necessarily
	// in order: veth queues a packet on the sending CPU's backlog, and the
	// sender may migrate between CPUs.
	buf := make([]byte, 256)
	seen := make([]bool, total)
	for i := 0; i < total; i++ {
		n, from, err := big.ReadFrom(buf)
		if err != nil {
			t.Fatal(err)
		}
		seq := int(buf[0])<<8 | int(buf[1])
		if n != len(pkt) || from != spokes[0].nbma || seq >= total || seen[seq] {
			t.Fatalf("packet %d: %d bytes from %s seq %d: not sent, or twice", i, n, from, seq)
		}
		seen[seq] = true
	}
}

// TestPrivScale measures programming many neighbors and routes, and that
// re-applying the same routes costs one dump and no changes.
func TestPrivScale(t *testing.T) {
	k := singleTunnel(t).k
	const n = 2000
	start := time.Now()
	for i := 0; i < n; i++ {
		addr := netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)})
		if err := k.ReplaceNeighbor(addr, netip.AddrFrom4([4]byte{172, 20, byte(i >> 8), byte(i)}), true); err != nil {
			t.Fatal(err)
		}
	}
	neighTime := time.Since(start)
	routes := make([]Route, n)
	for i := range routes {
		routes[i] = Route{Dst: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 100 + byte(i>>8), byte(i), 0}), 24), Via: netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)})}
	}
	start = time.Now()
	if err := k.SetRoutes(routes); err != nil {
		t.Fatal(err)
	}
	routeTime := time.Since(start)
	start = time.Now()
	if err := k.SetRoutes(routes); err != nil {
		t.Fatal(err)
	}
	noopTime := time.Since(start)
	got, err := k.ListRoutes()
	if err != nil {
		t.Fatal(err)
	}
	ns, err := k.ListNeighbors()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != n || len(ns) != n {
		t.Fatalf("%d routes, %d neighbors, want %d each", len(got), len(ns), n)
	}
	t.Logf("%d neighbors in %s (%s each); %d routes in %s; unchanged re-apply %s",
		n, neighTime, neighTime/n, n, routeTime, noopTime)
}
