package kernel

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/nftables"
)

type flowKey struct{ src, dst netip.Addr }

func (k flowKey) String() string { return k.src.String() + "->" + k.dst.String() }

// collectHairpins reads notifications until one from marker arrives and
// returns how many arrived per flow before it. NFLOG delivers a group's
// messages in order, so the marker proves every earlier one was seen, without
// waiting for a quiet period.
func collectHairpins(t *testing.T, ch <-chan Hairpin, marker netip.Addr, wantIfindex int) map[flowKey]int {
	t.Helper()
	counts := map[flowKey]int{}
	deadline := time.After(20 * time.Second)
	for {
		select {
		case h, ok := <-ch:
			if !ok {
				t.Fatal("hairpin channel closed")
			}
			if len(h.Packet) < 20 || h.Packet[0]>>4 != 4 {
				t.Fatalf("hairpin packet is not IPv4: %x", h.Packet)
			}
			if len(h.Packet) > DefaultHairpinSnaplen {
				t.Errorf("packet of %d bytes exceeds snaplen %d", len(h.Packet), DefaultHairpinSnaplen)
			}
			if h.InIfindex != wantIfindex {
				t.Errorf("InIfindex = %d, want %d", h.InIfindex, wantIfindex)
			}
			k := flowKey{netip.AddrFrom4([4]byte(h.Packet[12:16])), netip.AddrFrom4([4]byte(h.Packet[16:20]))}
			if k.src == marker {
				return counts
			}
			counts[k]++
		case <-deadline:
			t.Fatalf("no marker from %s; got %v", marker, counts)
		}
	}
}

// vethHairpin makes a hub namespace (veth h0, 10.1.0.1/24) whose peer's
// packets to 10.9.0.0/24 it forwards back out of h0, towards 10.1.0.3: a
// hairpin. It returns both namespaces and h0's ifindex.
func vethHairpin(t testing.TB) (hub, peer, h0 int) {
	t.Helper()
	hub, peer = newNetNS(t), newNetNS(t)
	vethPair(t, hub, "h0", "10.1.0.1/24", peer, "p0", "10.1.0.2/24")
	hp, pp := nsHandle(t, hub), nsHandle(t, peer)
	mustSysctl(t, hub, "net/ipv4/ip_forward", "1")
	mustSysctl(t, hub, "net/ipv4/conf/all/send_redirects", "0")
	mustSysctl(t, hub, "net/ipv4/conf/h0/send_redirects", "0")
	mustSysctl(t, peer, "net/ipv4/conf/all/accept_redirects", "0")
	addRoute(t, hp, "10.9.0.0/24", "10.1.0.3", 0) // back out of h0: a hairpin
	addRoute(t, pp, "10.9.0.0/24", "10.1.0.1", 0)
	l, err := hp.LinkByName("h0")
	if err != nil {
		t.Fatal(err)
	}
	return hub, peer, l.Attrs().Index
}

// TestPrivHairpinTriggerVeth exercises the nftables table, the per-flow limit
// and NFLOG delivery on a veth hairpin (no GRE needed, so it also runs on the
// development host): a hub namespace forwards packets from a peer back out of
// the interface they came in on.
func TestPrivHairpinTriggerVeth(t *testing.T) {
	hub, peer, h0 := vethHairpin(t)
	pp := nsHandle(t, peer)
	p0, err := pp.LinkByName("p0")
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"10.1.0.3/24", "10.1.0.4/24", "10.1.0.5/24"} {
		addLinkAddr(t, pp, p0, a)
	}

	trap, err := NewHairpinTrap(HairpinConfig{NetNS: hub, Group: 7, Rate: 1, Per: time.Hour, Burst: 2}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Install twice: the second replaces the first atomically (no EEXIST).
	for i := 0; i < 2; i++ {
		if err := trap.Install(h0); err != nil {
			t.Fatalf("install %d: %v", i, err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := trap.Hairpins(ctx)
	if err != nil {
		t.Fatal(err)
	}

	flow1 := udpIn(t, peer, "10.1.0.2:0")
	flow2 := udpIn(t, peer, "10.1.0.4:0")
	marker := udpIn(t, peer, "10.1.0.5:0")
	start := time.Now()
	for i := 0; i < 6; i++ {
		sendUDP(t, flow1, "10.9.0.1:9", fmt.Sprintf("flow1 %d", i))
		sendUDP(t, flow2, "10.9.0.2:9", fmt.Sprintf("flow2 %d", i))
	}
	sendUDP(t, marker, "10.9.0.1:9", "marker")
	got := collectHairpins(t, ch, netip.MustParseAddr("10.1.0.5"), h0)
	t.Logf("6 packets per flow, burst 2: notifications %v after %s", got, time.Since(start))
	want := map[flowKey]int{
		{netip.MustParseAddr("10.1.0.2"), netip.MustParseAddr("10.9.0.1")}: 2,
		{netip.MustParseAddr("10.1.0.4"), netip.MustParseAddr("10.9.0.2")}: 2,
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("notifications per flow (-want +got):\n%s", d)
	}

	// Latency of a single notification: the queue threshold of 1 must deliver
	// it at once, not after NFLOG's default one-second batching.
	fresh := udpIn(t, peer, "10.1.0.3:0")
	sent := time.Now()
	sendUDP(t, fresh, "10.9.0.3:9", "latency")
	select {
	case h := <-ch:
		lat := time.Since(sent)
		t.Logf("notification latency %s", lat)
		if lat > 500*time.Millisecond {
			t.Errorf("notification took %s; queue threshold not effective", lat)
		}
		if got := netip.AddrFrom4([4]byte(h.Packet[12:16])); got != netip.MustParseAddr("10.1.0.3") {
			t.Errorf("unexpected source %s", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no notification for a fresh flow")
	}

	// Removal is idempotent and leaves no table behind.
	for i := 0; i < 2; i++ {
		if err := trap.Remove(); err != nil {
			t.Fatalf("remove %d: %v", i, err)
		}
	}
	cc, err := nftables.New(nftables.WithNetNSFd(hub))
	if err != nil {
		t.Fatal(err)
	}
	tables, err := cc.ListTablesOfFamily(nftables.TableFamilyIPv4)
	if err != nil {
		t.Fatal(err)
	}
	for _, tb := range tables {
		if tb.Name == DefaultHairpinTable {
			t.Errorf("table %s still present after Remove", tb.Name)
		}
	}
}
