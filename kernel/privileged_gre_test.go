package kernel

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// waitMiss reads misses until want arrives.
func waitMiss(t *testing.T, ch <-chan Miss, want Miss, timeout time.Duration, poke func()) {
	t.Helper()
	deadline := time.After(timeout)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	poke()
	for {
		select {
		case m, ok := <-ch:
			if !ok {
				t.Fatal("miss channel closed")
			}
			t.Logf("miss %s %s", m.Addr, m.State)
			if m == want {
				return
			}
		case <-tick.C:
			poke() // traffic keeps the entry in use
		case <-deadline:
			t.Fatalf("no miss %s %s within %s", want.Addr, want.State, timeout)
		}
	}
}

func TestPrivNeighborMiss(t *testing.T) {
	fd, _, _ := singleNode(t)
	k := newKernel(t, fd)
	if _, err := k.EnsureTunnel(TunnelConfig{Name: "gre1", Local: netip.MustParseAddr("172.16.9.1"), Key: 42, TTL: 64, Address: netip.MustParsePrefix("10.0.0.1/32")}); err != nil {
		t.Fatal(err)
	}
	if err := k.SetRoutes([]Route{{Dst: netip.MustParsePrefix("10.0.0.0/24")}}); err != nil {
		t.Fatal(err)
	}
	misses, cancel := watchMisses(t, k)
	peer := netip.MustParseAddr("10.0.0.77")
	u := udpIn(t, fd, "10.0.0.1:0")
	send := func() { sendUDP(t, u, "10.0.0.77:9", "hello") }

	start := time.Now()
	waitMiss(t, misses, Miss{Addr: peer, State: NeighIncomplete}, 10*time.Second, send)
	t.Logf("INCOMPLETE miss after %s", time.Since(start))

	// Answer it with a dynamic entry that ages quickly; continued traffic must
	// make the kernel ask again (PROBE): the "still in use" signal.
	mustSysctl(t, fd, "net/ipv4/neigh/gre1/base_reachable_time_ms", "400")
	mustSysctl(t, fd, "net/ipv4/neigh/gre1/delay_first_probe_time", "1")
	if err := k.ReplaceNeighbor(peer, netip.MustParseAddr("172.16.9.77"), false); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	waitMiss(t, misses, Miss{Addr: peer, State: NeighProbe}, 30*time.Second, send)
	t.Logf("PROBE miss for an in-use entry after %s", time.Since(start))

	cancel()
	for range misses { // closes after cancel
	}
}

// readWithin reads one packet or fails after timeout (closing the socket
// to unblock the reader).
func readWithin(t *testing.T, c *NHRPConn, timeout time.Duration) ([]byte, netip.Addr) {
	t.Helper()
	return readWithinInto(t, c, make([]byte, 1500), timeout)
}

// readWithinInto is readWithin reading into buf.
func readWithinInto(t *testing.T, c *NHRPConn, buf []byte, timeout time.Duration) ([]byte, netip.Addr) {
	t.Helper()
	type res struct {
		b    []byte
		from netip.Addr
		err  error
	}
	ch := make(chan res, 1)
	go func() {
		n, from, err := c.ReadFrom(buf)
		ch <- res{buf[:n], from, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatal(r.err)
		}
		return r.b, r.from
	case <-time.After(timeout):
		_ = c.Close()
		t.Fatalf("no NHRP packet within %s", timeout)
	}
	return nil, netip.Addr{}
}

func TestPrivNHRPSocket(t *testing.T) {
	hub, spokes := hubAndSpokes(t, 2)
	open := func(g *greNode) *NHRPConn {
		c := g.listenNHRP(t, 4<<20)
		if rb, err := c.RcvBuf(); err != nil || rb < 4<<20 {
			t.Errorf("SO_RCVBUF = %d (%v), want >= %d", rb, err, 4<<20)
		}
		return c
	}
	hc, s1, s2 := open(hub), open(spokes[0]), open(spokes[1])

	// Spoke -> hub: the hub sees the spoke's NBMA address as source.
	payload := []byte("nhrp registration from spoke 1")
	if _, err := s1.WriteTo(payload, netip.MustParseAddr("172.16.1.1")); err != nil {
		t.Fatal(err)
	}
	got, from := readWithin(t, hc, 10*time.Second)
	if string(got) != string(payload) || from != spokes[0].nbma {
		t.Errorf("hub got %q from %s, want %q from %s", got, from, payload, spokes[0].nbma)
	}
	// A buffer shorter than the packet: ReadFrom fills its length, not
	// its capacity.
	if _, err := s1.WriteTo(payload, netip.MustParseAddr("172.16.1.1")); err != nil {
		t.Fatal(err)
	}
	short := make([]byte, 8, 64)
	for i := range short[:cap(short)] {
		short[:cap(short)][i] = 0xaa // sentinel past the length
	}
	got, from = readWithinInto(t, hc, short, 10*time.Second)
	if string(got) != string(payload[:8]) || from != spokes[0].nbma {
		t.Errorf("hub got %q from %s into 8 octets, want %q from %s", got, from, payload[:8], spokes[0].nbma)
	}
	for i, b := range short[8:cap(short)] {
		if b != 0xaa {
			t.Fatalf("ReadFrom wrote octet %d, past the buffer's length 8", 8+i)
		}
	}
	// Hub -> spoke 2, no neighbor entry needed for the NBMA destination.
	payload = []byte("reply to spoke 2")
	if _, err := hc.WriteTo(payload, spokes[1].nbma); err != nil {
		t.Fatal(err)
	}
	got, from = readWithin(t, s2, 10*time.Second)
	if string(got) != string(payload) || from != netip.MustParseAddr("172.16.2.1") {
		t.Errorf("spoke 2 got %q from %s, want %q from 172.16.2.1", got, from, payload)
	}
	// Spoke 1 -> spoke 2 directly over NBMA (routed by the hub's underlay).
	payload = []byte("resolution spoke 1 to spoke 2")
	if _, err := s1.WriteTo(payload, spokes[1].nbma); err != nil {
		t.Fatal(err)
	}
	got, from = readWithin(t, s2, 10*time.Second)
	if string(got) != string(payload) || from != spokes[0].nbma {
		t.Errorf("spoke 2 got %q from %s, want %q from %s", got, from, payload, spokes[0].nbma)
	}
	if _, err := s1.WriteTo(payload, netip.MustParseAddr("2001:db8::1")); err == nil {
		t.Error("IPv6 NBMA destination accepted")
	}
}

func TestPrivHairpinTriggerGRE(t *testing.T) {
	hub, spokes := hubAndSpokes(t, 2)
	trap, err := NewHairpinTrap(HairpinConfig{NetNS: hub.fd, Group: 3, Rate: 1, Per: time.Hour, Burst: 2}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := trap.Install(hub.ifindex); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = trap.Remove() })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := trap.Hairpins(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// A ping spoke 1 -> spoke 2 through the hub: requests and replies both
	// enter and leave the hub's tunnel.
	pinger := icmpIn(t, spokes[0].fd, 0x4242)
	start := time.Now()
	for seq := uint16(1); seq <= 6; seq++ {
		if err := pinger.ping(spokes[1].tun, seq, 10*time.Second); err != nil {
			t.Fatalf("ping %d through the hub: %v", seq, err)
		}
	}
	t.Logf("6 hairpinned pings took %s", time.Since(start))
	// Marker flow: spoke 1 to an unresolved tunnel address (logged at the
	// forward hook before neighbor resolution).
	marker := udpIn(t, spokes[0].fd, "10.0.0.2:0")
	sendUDP(t, marker, "10.0.0.99:9", "marker")

	counts := map[flowKey]int{}
	deadline := time.After(20 * time.Second)
	for done := false; !done; {
		select {
		case h := <-ch:
			if h.InIfindex != hub.ifindex {
				t.Errorf("InIfindex = %d, want %d", h.InIfindex, hub.ifindex)
			}
			if len(h.Packet) < 20 {
				t.Fatalf("short packet %x", h.Packet)
			}
			k := flowKey{netip.AddrFrom4([4]byte(h.Packet[12:16])), netip.AddrFrom4([4]byte(h.Packet[16:20]))}
			if k.dst == netip.MustParseAddr("10.0.0.99") {
				done = true
				continue
			}
			counts[k]++
		case <-deadline:
			t.Fatalf("no marker; got %v", counts)
		}
	}
	want := map[flowKey]int{
		{spokes[0].tun, spokes[1].tun}: 2, // echo requests, burst 2
		{spokes[1].tun, spokes[0].tun}: 2, // echo replies, burst 2
	}
	if d := cmp.Diff(want, counts); d != "" {
		t.Errorf("trigger events per flow for 6 pings (-want +got):\n%s", d)
	}

	// Latency: a fresh flow's first packet reaches us within milliseconds.
	fresh := udpIn(t, spokes[1].fd, "10.0.0.3:0")
	sent := time.Now()
	sendUDP(t, fresh, "10.0.0.98:7", "latency")
	select {
	case <-ch:
		t.Logf("hairpin notification latency %s", time.Since(sent))
		if lat := time.Since(sent); lat > 500*time.Millisecond {
			t.Errorf("latency %s: NFLOG batching not disabled", lat)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no notification for a fresh flow")
	}
}

// TestPrivRestartAdoptsWithoutDelete: a second instance adopts the tunnel,
// neighbors and routes of the first without deleting anything, while a ping
// over them keeps getting every reply.
func TestPrivRestartAdoptsWithoutDelete(t *testing.T) {
	hub, spokes := hubAndSpokes(t, 1)
	spoke := spokes[0]
	// The spoke serves a LAN address behind its tunnel.
	if err := spoke.h.LinkAdd(&netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Name: "lan0"}}); err != nil {
		t.Fatal(err)
	}
	lan, err := spoke.h.LinkByName("lan0")
	if err != nil {
		t.Fatal(err)
	}
	addLinkAddr(t, spoke.h, lan, "192.168.2.1/24")
	if err := spoke.h.LinkSetUp(lan); err != nil {
		t.Fatal(err)
	}
	// The hub's state: the spoke's entry and a route to its LAN.
	desiredRoutes := []Route{
		{Dst: netip.MustParsePrefix("10.0.0.0/24")},
		{Dst: netip.MustParsePrefix("192.168.2.0/24"), Via: spoke.tun},
	}
	apply := func(k *Kernel) {
		t.Helper()
		if err := k.ReplaceNeighbor(spoke.tun, netip.MustParseAddr("172.16.1.2"), true); err != nil {
			t.Fatal(err)
		}
		if err := k.SetRoutes(desiredRoutes); err != nil {
			t.Fatal(err)
		}
	}
	apply(hub.k)

	// Watch the hub's namespace for any deletion.
	ns := netns.NsHandle(hub.fd)
	done := make(chan struct{})
	defer close(done)
	neighCh := make(chan netlink.NeighUpdate, 256)
	routeCh := make(chan netlink.RouteUpdate, 256)
	linkCh := make(chan netlink.LinkUpdate, 256)
	if err := netlink.NeighSubscribeWithOptions(neighCh, done, netlink.NeighSubscribeOptions{Namespace: &ns}); err != nil {
		t.Fatal(err)
	}
	if err := netlink.RouteSubscribeWithOptions(routeCh, done, netlink.RouteSubscribeOptions{Namespace: &ns}); err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSubscribeWithOptions(linkCh, done, netlink.LinkSubscribeOptions{Namespace: &ns}); err != nil {
		t.Fatal(err)
	}
	var (
		mu     sync.Mutex
		events []string
	)
	record := func(e string) {
		mu.Lock()
		events = append(events, e)
		mu.Unlock()
	}
	go func() {
		for {
			select {
			case u, ok := <-neighCh:
				if !ok {
					return
				}
				switch u.Type {
				case unix.RTM_DELNEIGH:
					record("del neigh " + u.IP.String())
				case unix.RTM_NEWNEIGH:
					record("new neigh " + u.IP.String())
				}
			case u, ok := <-routeCh:
				if !ok {
					return
				}
				switch u.Type {
				case unix.RTM_DELROUTE:
					record(fmt.Sprintf("del route %v", u.Dst))
				case unix.RTM_NEWROUTE:
					record(fmt.Sprintf("new route %v", u.Dst))
				}
			case u, ok := <-linkCh:
				if !ok {
					return
				}
				switch u.Header.Type {
				case unix.RTM_DELLINK:
					record("del link " + strconv.Itoa(int(u.Index)))
				case unix.RTM_NEWLINK:
					record("new link " + u.Attrs().Name + " alias " + u.Attrs().Alias)
				}
			case <-done:
				return
			}
		}
	}()

	// A running ping from the hub to the spoke's LAN over the adopted state.
	pinger := icmpIn(t, hub.fd, 0x5151)
	target := netip.MustParseAddr("192.168.2.1")
	var (
		sent      atomic.Int64
		lost      int
		restarted = make(chan struct{})
		pingErr   error
	)
	pingDone := make(chan struct{})
	go func() {
		defer close(pingDone)
		after := 0
		for seq := uint16(1); ; seq++ {
			sent.Add(1)
			if err := pinger.ping(target, seq, 2*time.Second); err != nil {
				lost++
				pingErr = err
			}
			select {
			case <-restarted:
				after++
			default:
			}
			if after >= 20 || seq > 2000 {
				return
			}
		}
	}()
	// Let a few pings pass, then restart.
	waitFor(t, "pings before restart", 30*time.Second, func() (bool, error) { return sent.Load() >= 10, nil })
	before, err := hub.k.ListNeighbors()
	if err != nil {
		t.Fatal(err)
	}
	_ = hub.k.Close()
	k2, err := New(Config{NetNS: hub.fd})
	if err != nil {
		t.Fatal(err)
	}
	defer k2.Close()
	idx, err := k2.EnsureTunnel(hub.cfg)
	if err != nil {
		t.Fatal(err)
	}
	apply(k2)
	close(restarted)
	<-pingDone
	if idx != hub.ifindex {
		t.Errorf("restart: ifindex %d, want %d (tunnel re-created)", idx, hub.ifindex)
	}
	after, err := k2.ListNeighbors()
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(fmtNeighbors(before), fmtNeighbors(after)); d != "" {
		t.Errorf("neighbors changed across restart (-before +after):\n%s", d)
	}
	routes, err := k2.ListRoutes()
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(desiredRoutes, routes, cmpAddrs...); d != "" {
		t.Errorf("routes after restart (-want +got):\n%s", d)
	}
	t.Logf("running ping: %d sent, %d lost across the restart", sent.Load(), lost)
	if lost != 0 {
		t.Errorf("%d of %d pings lost across the restart (last error %v)", lost, sent.Load(), pingErr)
	}
	// Sentinels on each event socket: once they are seen, every earlier
	// event on that socket has been seen too.
	if err := k2.ReplaceNeighbor(netip.MustParseAddr("10.0.0.250"), netip.MustParseAddr("172.16.1.250"), true); err != nil {
		t.Fatal(err)
	}
	addRoute(t, hub.h, "10.250.0.0/16", "172.16.1.2", 4)
	lo, err := hub.h.LinkByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	if err := hub.h.LinkSetAlias(lo, "sentinel"); err != nil {
		t.Fatal(err)
	}
	sentinels := []string{"new neigh 10.0.0.250", "new route 10.250.0.0/16", "new link lo alias sentinel"}
	waitFor(t, "sentinel events", 20*time.Second, func() (bool, error) {
		mu.Lock()
		defer mu.Unlock()
		seen := 0
		for _, s := range sentinels {
			for _, e := range events {
				if e == s {
					seen++
					break
				}
			}
		}
		return seen == len(sentinels), nil
	})
	mu.Lock()
	defer mu.Unlock()
	var deletes []string
	for _, e := range events {
		if strings.HasPrefix(e, "del ") {
			deletes = append(deletes, e)
		}
	}
	if len(deletes) != 0 {
		t.Errorf("restart deleted kernel state: %v", deletes)
	}
}

// TestPrivNeighborTableFull fills the (global) IPv4 neighbor table and
// checks the refusal is typed, that permanent entries are exempt and that
// SizeNeighborTable lifts the limit. It changes gc_thresh* for the whole
// machine and restores them: it runs only where GRE exists (the lab VM).
func TestPrivNeighborTableFull(t *testing.T) {
	fd, _, _ := singleNode(t)
	// gc_thresh* exist only in the initial network namespace (the table is
	// global): the test process runs there in the lab.
	sc := ProcSysctl{}
	for i := 1; i <= 3; i++ {
		key := fmt.Sprintf("net/ipv4/neigh/default/gc_thresh%d", i)
		old, err := sc.ReadSysctl(key)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = sc.WriteSysctl(key, old) })
	}
	for i, v := range []string{"4", "8", "16"} {
		if err := sc.WriteSysctl(fmt.Sprintf("net/ipv4/neigh/default/gc_thresh%d", i+1), v); err != nil {
			t.Fatal(err)
		}
	}
	k := newKernel(t, fd)
	if _, err := k.EnsureTunnel(TunnelConfig{Name: "gre1", Key: 42, TTL: 64, Address: netip.MustParsePrefix("10.0.0.1/32")}); err != nil {
		t.Fatal(err)
	}
	var refused netip.Addr
	var refusal error
	for i := 2; i < 250; i++ {
		addr := netip.AddrFrom4([4]byte{10, 0, 1, byte(i)})
		if err := k.ReplaceNeighbor(addr, netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}), false); err != nil {
			refused, refusal = addr, err
			break
		}
	}
	if refusal == nil {
		t.Fatal("the kernel accepted 248 dynamic entries with gc_thresh3=16")
	}
	t.Logf("refused %s: %v", refused, refusal)
	if !errors.Is(refusal, ErrResourceExhausted) {
		t.Errorf("refusal %v is not ErrResourceExhausted", refusal)
	}
	if err := k.ReplaceNeighbor(netip.MustParseAddr("10.0.2.1"), netip.MustParseAddr("203.0.113.1"), true); err != nil {
		t.Errorf("permanent entry refused in a full table: %v", err)
	}
	if err := SizeNeighborTable(sc, 1000); err != nil {
		t.Fatal(err)
	}
	if err := k.ReplaceNeighbor(refused, netip.MustParseAddr("198.51.100.1"), false); err != nil {
		t.Errorf("after SizeNeighborTable: %v", err)
	}
}

// TestPrivMissWatcherSurvivesOverflow gives the neighbor event socket a tiny
// receive buffer, floods it (taking the tunnel down flushes hundreds of
// entries in one go), and checks that the watcher resubscribed and still
// reports misses afterwards.
func TestPrivMissWatcherSurvivesOverflow(t *testing.T) {
	fd, h, _ := singleNode(t)
	k, err := New(Config{NetNS: fd, MissRcvBuf: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	cfg := TunnelConfig{Name: "gre1", Local: netip.MustParseAddr("172.16.9.1"), Key: 42, TTL: 64, Address: netip.MustParsePrefix("10.0.0.1/32")}
	if _, err := k.EnsureTunnel(cfg); err != nil {
		t.Fatal(err)
	}
	misses, _ := watchMisses(t, k)
	for i := 0; i < 400; i++ {
		addr := netip.AddrFrom4([4]byte{10, 0, byte(1 + i/250), byte(1 + i%250)})
		if err := k.ReplaceNeighbor(addr, netip.MustParseAddr("172.16.9.200"), true); err != nil {
			t.Fatal(err)
		}
	}
	link, err := h.LinkByName("gre1")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.LinkSetDown(link); err != nil { // flushes every entry at once
		t.Fatal(err)
	}
	if _, err := k.EnsureTunnel(cfg); err != nil { // brings it back up
		t.Fatal(err)
	}
	waitFor(t, "a resubscription after the overflow", 20*time.Second, func() (bool, error) {
		return k.Resubscribes() > 0, nil
	})
	t.Logf("resubscribed %d times", k.Resubscribes())
	if err := k.SetRoutes([]Route{{Dst: netip.MustParsePrefix("10.9.0.0/24")}}); err != nil {
		t.Fatal(err)
	}
	u := udpIn(t, fd, "10.0.0.1:0")
	waitMiss(t, misses, Miss{Addr: netip.MustParseAddr("10.9.0.5"), State: NeighIncomplete}, 20*time.Second,
		func() { sendUDP(t, u, "10.9.0.5:9", "after overflow") })
}
