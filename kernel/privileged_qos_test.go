package kernel

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
	"golang.org/x/sys/unix"
)

// qosNode is a namespace whose ul0 (172.16.20.1/24) is a veth to a peer
// namespace holding 172.16.20.2-.9, so packets to those addresses leave
// through ul0's qdisc.
func qosNode(t *testing.T) (fd, peer int) {
	t.Helper()
	fd, peer = newNetNS(t), newNetNS(t)
	vethPair(t, fd, "ul0", "172.16.20.1/24", peer, "peer0", "172.16.20.2/24")
	h := nsHandle(t, peer)
	l, err := h.LinkByName("peer0")
	if err != nil {
		t.Fatal(err)
	}
	for i := 3; i <= 9; i++ {
		addLinkAddr(t, h, l, fmt.Sprintf("172.16.20.%d/32", i))
	}
	return fd, peer
}

// htbLines keeps the HTB classes of `tc class show` (fq_codel lists its
// active flows as classes too, which come and go with traffic).
func htbLines(out string) string {
	var keep []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "class htb ") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

// qosFilters is `tc filter show` of our root and of each bucket qdisc on
// ul0 that holds one of dsts, in that order.
func qosFilters(t *testing.T, fd int, dsts ...netip.Addr) string {
	t.Helper()
	out := tcIn(t, fd, "filter", "show", "dev", "ul0")
	seen := map[int]bool{}
	for _, d := range dsts {
		b := qosBucketOf(d)
		if seen[b] {
			continue
		}
		seen[b] = true
		out += tcIn(t, fd, "filter", "show", "dev", "ul0", "parent", fmt.Sprintf("%x:", qosBucketMajor(b)))
	}
	return out
}

// bucketOf is the major of dst's bucket qdisc, as tc prints it.
func bucketOf(dst netip.Addr) string { return fmt.Sprintf("%x", qosBucketMajor(qosBucketOf(dst))) }

// udpTOS opens a UDP socket in the namespace whose packets carry tos.
func udpTOS(t *testing.T, fd int, tos int) *net.UDPConn {
	t.Helper()
	c := udpIn(t, fd, "0.0.0.0:0")
	raw, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	if err := raw.Control(func(s uintptr) { serr = unix.SetsockoptInt(int(s), unix.IPPROTO_IP, unix.IP_TOS, tos) }); err != nil || serr != nil {
		t.Fatalf("IP_TOS: %v %v", err, serr)
	}
	return c
}

func qosPolicies() map[string]QoSPolicy {
	return map[string]QoSPolicy{
		"branch-2m": {Rate: 2_000_000, Classes: []QoSClass{
			{Name: "voice", DSCP: []uint8{46}, Priority: true, Rate: 256_000},
			{Name: "video", DSCP: []uint8{34}, Rate: 512_000, Ceil: 1_500_000},
		}},
		"small": {Rate: 512_000},
	}
}

func classPackets(t *testing.T, k *Kernel, dst netip.Addr, class string) uint64 {
	t.Helper()
	st, err := k.QoSStats()
	if err != nil {
		t.Fatal(err)
	}
	for _, ts := range st {
		if ts.Dst != dst {
			continue
		}
		for _, c := range ts.Classes {
			if c.Name == class {
				return c.Packets
			}
		}
	}
	t.Fatalf("no class %q for %s in %+v", class, dst, st)
	return 0
}

// sendAndCount sends n packets from c to dst:9 and waits until class of
// dst counted exactly n more.
func sendAndCount(t *testing.T, k *Kernel, c *net.UDPConn, dst netip.Addr, class string, n int) {
	t.Helper()
	before := classPackets(t, k, dst, class)
	for i := 0; i < n; i++ {
		sendUDP(t, c, dst.String()+":9", "qos")
	}
	var got uint64
	waitFor(t, fmt.Sprintf("%d packets in class %s of %s", n, class, dst), 5*time.Second, func() (bool, error) {
		got = classPackets(t, k, dst, class) - before
		return got >= uint64(n), nil
	})
	if got != uint64(n) {
		t.Errorf("class %s of %s counted %d packets, want %d", class, dst, got, n)
	}
}

func TestPrivQoS(t *testing.T) {
	fd, _ := qosNode(t)
	k := newKernel(t, fd)
	a2, a3, a4 := netip.MustParseAddr("172.16.20.2"), netip.MustParseAddr("172.16.20.3"), netip.MustParseAddr("172.16.20.4")
	targets := []QoSTarget{{Dst: a2, Policy: "branch-2m"}, {Dst: a3, Policy: "small"}, {Dst: a4, Policy: "branch-2m"}}
	if err := k.SetQoS(qosPolicies(), targets); err != nil {
		t.Fatal(err)
	}
	classes := htbLines(tcIn(t, fd, "class", "show", "dev", "ul0"))
	filters := qosFilters(t, fd, a2, a3, a4)
	t.Logf("tc class show:\n%s\ntc filter show:\n%s", classes, filters)
	q2, q3, q4 := bucketOf(a2), bucketOf(a3), bucketOf(a4)
	for _, want := range []string{
		"class htb d:1 root leaf 1: prio 1 rate 1Tbit ceil 1Tbit",
		"class htb d:" + q2 + " root leaf " + q2 + ": prio 1 rate 1Tbit ceil 1Tbit",
		"class htb " + q2 + ":200 root rate 2Mbit ceil 2Mbit",
		"class htb " + q2 + ":201 parent " + q2 + ":200 leaf 201: prio 0 rate 256Kbit ceil 256Kbit",
		"class htb " + q2 + ":202 parent " + q2 + ":200 leaf 202: prio 1 rate 512Kbit ceil 1500Kbit",
		"class htb " + q2 + ":203 parent " + q2 + ":200 leaf 203: prio 1 rate 1232Kbit ceil 2Mbit",
		"class htb " + q3 + ":206 root rate 512Kbit ceil 512Kbit",
		"class htb " + q3 + ":207 parent " + q3 + ":206 leaf 207: prio 1 rate 512Kbit ceil 512Kbit",
		"class htb " + q4 + ":20c root rate 2Mbit ceil 2Mbit",
	} {
		if !strings.Contains(classes, want) {
			t.Errorf("tc class show lacks %q", want)
		}
	}
	for _, want := range []string{
		"filter parent d: protocol ip pref 10 u32 chain 0 fh 1: ht divisor 256",
		"filter parent d: protocol ip pref 10 u32 chain 0 fh 800::1 order 1 key ht 800 bkt 0 link 1:",
		"filter parent d: protocol ip pref 10 u32 chain 0 fh 102: ht divisor 256",
		"fh 102:14:1 order 1 key ht 102 bkt 14 *flowid d:" + q2, // 172.16.20.2 to its bucket
		"match ac101402/ffffffff at 16",
		"fh 103:14:1 order 1 key ht 103 bkt 14 *flowid d:" + q3,
		// q2's filters (tc omits the parent it was asked for):
		"filter protocol ip pref 10 u32 chain 0 fh 800::1 order 1 key ht 800 bkt 0 link 1:",
		"fh 1:2:1 order 1 key ht 1 bkt 2 *flowid " + q2 + ":202", // DSCP 34 (AF41)
		"match 00880000/00fc0000 at 0",
		"fh 1:2:2 order 2 key ht 1 bkt 2 *flowid " + q2 + ":201", // DSCP 46 (EF)
		"match 00b80000/00fc0000 at 0",
		"fh 1:2:3 order 3 key ht 1 bkt 2 *flowid " + q2 + ":203", // catch-all
		"fh 1:3:1 order 1 key ht 1 bkt 3 *flowid " + q3 + ":207",
	} {
		if !strings.Contains(filters, want) {
			t.Errorf("tc filter show lacks %q", want)
		}
	}

	// A generated packet lands in its class: EF to voice, AF41 to video,
	// unmarked to the policy's default, and a non-target is unshaped.
	ef, af41, be := udpTOS(t, fd, 46<<2), udpTOS(t, fd, 34<<2), udpTOS(t, fd, 0)
	sendAndCount(t, k, ef, a2, "voice", 10)
	sendAndCount(t, k, af41, a2, "video", 7)
	sendAndCount(t, k, be, a2, "default", 5)
	sendAndCount(t, k, ef, a3, "default", 4) // "small" has no voice class
	sendAndCount(t, k, ef, a4, "voice", 3)
	if n := classPackets(t, k, a4, "video"); n != 0 {
		t.Errorf("video of %s counted %d packets, want 0", a4, n)
	}
	unshaped := tcIn(t, fd, "-s", "class", "show", "dev", "ul0", "classid", "d:1")
	t.Logf("unshaped class before a non-target send:\n%s", unshaped)

	// A restarted daemon adopts the tree: no netlink change at all.
	k2, err := New(Config{NetNS: fd, Logger: zaptest.NewLogger(t)}) // logs every change
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k2.Close() })
	if err := k2.SetQoS(qosPolicies(), targets); err != nil {
		t.Fatal(err)
	}
	if n := k2.qosChanges.Load(); n != 0 {
		t.Errorf("adoption made %d netlink changes, want 0", n)
	}
	if got := htbLines(tcIn(t, fd, "class", "show", "dev", "ul0")); got != classes {
		t.Errorf("classes changed by adoption:\n%s", got)
	}
	if got := qosFilters(t, fd, a2, a3, a4); got != filters {
		t.Errorf("filters changed by adoption:\n%s", got)
	}
	sendAndCount(t, k2, ef, a2, "voice", 2)

	// A target leaves: its classes and entries go, the others stay.
	if err := k2.SetQoS(qosPolicies(), targets[:2]); err != nil {
		t.Fatal(err)
	}
	classes = htbLines(tcIn(t, fd, "class", "show", "dev", "ul0"))
	filters = qosFilters(t, fd, a2, a3, a4)
	if strings.Contains(classes, q4+":20c") || strings.Contains(filters, "ac101404") {
		t.Errorf("removed target still installed:\n%s\n%s", classes, filters)
	}
	if !strings.Contains(classes, "class htb "+q2+":200 root") || !strings.Contains(filters, "ac101402") {
		t.Errorf("remaining target lost:\n%s\n%s", classes, filters)
	}
	sendAndCount(t, k2, ef, a2, "voice", 1)

	// None left: the kernel's default root qdisc is back.
	if err := k2.SetQoS(qosPolicies(), nil); err != nil {
		t.Fatal(err)
	}
	if q := tcIn(t, fd, "qdisc", "show", "dev", "ul0"); strings.Contains(q, "htb") {
		t.Errorf("root qdisc not restored:\n%s", q)
	}
}

// TestPrivQoSGRE sends through an mGRE tunnel: "tos inherit" copies the
// inner DSCP to the outer header, which the filter on the underlay sees.
func TestPrivQoSGRE(t *testing.T) {
	requireGRE(t)
	fd, _ := qosNode(t)
	k := newKernel(t, fd)
	if _, err := k.EnsureTunnel(TunnelConfig{Name: "gre1", Local: netip.MustParseAddr("172.16.20.1"), Key: 42, TTL: 64, Address: netip.MustParsePrefix("10.0.0.1/24")}); err != nil {
		t.Fatal(err)
	}
	peer := netip.MustParseAddr("172.16.20.2")
	if err := k.ReplaceNeighbor(netip.MustParseAddr("10.0.0.2"), peer, true); err != nil {
		t.Fatal(err)
	}
	if err := k.SetQoS(qosPolicies(), []QoSTarget{{Dst: peer, Policy: "branch-2m"}}); err != nil {
		t.Fatal(err)
	}
	ef, be := udpTOS(t, fd, 46<<2), udpTOS(t, fd, 0)
	for _, c := range []struct {
		conn  *net.UDPConn
		class string
		n     int
	}{{ef, "voice", 6}, {be, "default", 4}} {
		before := classPackets(t, k, peer, c.class)
		for i := 0; i < c.n; i++ {
			sendUDP(t, c.conn, "10.0.0.2:9", "inner")
		}
		var got uint64
		waitFor(t, "GRE packets in "+c.class, 5*time.Second, func() (bool, error) {
			got = classPackets(t, k, peer, c.class) - before
			return got >= uint64(c.n), nil
		})
		if got != uint64(c.n) {
			t.Errorf("class %s counted %d GRE packets, want %d", c.class, got, c.n)
		}
	}
}

// TestPrivQoSBatchRefusal: the kernel refuses one target in the middle of
// an install batch (a node we did not make sits at the handle its first
// entry takes: EEXIST); that target alone is reported, its other objects
// are cleaned up, the targets before and after it are installed, and the
// next SetQoS (which reads the kernel again) removes the intruder and
// installs the target.
func TestPrivQoSBatchRefusal(t *testing.T) {
	fd, _ := qosNode(t)
	addRoute(t, nsHandle(t, fd), "172.16.0.0/12", "172.16.20.2", 0)
	k := newKernel(t, fd)
	a2 := netip.MustParseAddr("172.16.20.2")
	if err := k.SetQoS(qosPolicies(), []QoSTarget{{Dst: a2, Policy: "branch-2m"}}); err != nil {
		t.Fatal(err)
	}
	// 172.17.20.2 shares a2's bucket of the root's table (102:14:), where
	// a2's entry holds node 1.
	tcIn(t, fd, "filter", "add", "dev", "ul0", "parent", "d:", "prio", "10", "protocol", "ip",
		"handle", "102:14:2", "u32", "ht", "102:14:", "match", "ip", "dst", "172.16.20.99/32", "flowid", "d:1")
	before, middle, after := netip.MustParseAddr("172.16.20.4"), netip.MustParseAddr("172.17.20.2"), netip.MustParseAddr("172.18.0.5")
	targets := []QoSTarget{{Dst: a2, Policy: "branch-2m"}, {Dst: before, Policy: "branch-2m"}, {Dst: middle, Policy: "branch-2m"}, {Dst: after, Policy: "small"}}
	err := k.SetQoS(qosPolicies(), targets)
	var qe *QoSErrors
	if !errors.As(err, &qe) || len(qe.Failed) != 1 {
		t.Fatalf("err = %v, want one refused target", err)
	}
	if f := qe.Failed[0]; f.Dst != middle || f.Reason != QoSKernel || !errors.Is(f.Err, unix.EEXIST) {
		t.Errorf("refusal = %v, want %s refused by the kernel (EEXIST)", f, middle)
	}
	classes := htbLines(tcIn(t, fd, "class", "show", "dev", "ul0"))
	filters := qosFilters(t, fd, a2, before, middle, after)
	t.Logf("after the refusal:\n%s\n%s", classes, filters)
	// Slots: a2 0 (200), before 1 (206), middle 2 (20c, released), after
	// 3 (212), each on its bucket's qdisc.
	for _, want := range []string{"class htb " + bucketOf(a2) + ":200 root", "class htb " + bucketOf(before) + ":206 root", "class htb " + bucketOf(after) + ":212 root"} {
		if !strings.Contains(classes, want) {
			t.Errorf("tc class show lacks %q", want)
		}
	}
	if strings.Contains(classes, bucketOf(middle)+":20c") || strings.Contains(filters, "ac111402") {
		t.Errorf("the refused target left objects behind")
	}
	for _, want := range []string{"match ac101404/ffffffff at 16", "match ac120005/ffffffff at 16", "match ac101463/ffffffff at 16"} {
		if !strings.Contains(filters, want) {
			t.Errorf("tc filter show lacks %q", want)
		}
	}
	if err := k.SetQoS(qosPolicies(), targets); err != nil {
		t.Fatalf("second SetQoS: %v", err)
	}
	filters = qosFilters(t, fd, a2, before, middle, after)
	if strings.Contains(filters, "ac101463") || !strings.Contains(filters, "match ac111402/ffffffff at 16") {
		t.Errorf("second SetQoS did not replace the intruder by the target:\n%s", filters)
	}
	udp := udpTOS(t, fd, 46<<2)
	sendAndCount(t, k, udp, before, "voice", 3)
}

// TestPrivQoSLegacyLayout: a tree of the previous layout (a target's
// classes right on the root qdisc d:, its entry on d: leading to them) is
// rebuilt once into the bucket layout, which then classifies, and which the
// next instance adopts without a change.
func TestPrivQoSLegacyLayout(t *testing.T) {
	fd, _ := qosNode(t)
	a2 := netip.MustParseAddr("172.16.20.2")
	for _, cmd := range [][]string{
		{"qdisc", "add", "dev", "ul0", "root", "handle", "d:", "htb", "default", "1"},
		{"class", "add", "dev", "ul0", "parent", "d:", "classid", "d:1", "htb", "rate", "1Tbit"},
		{"class", "add", "dev", "ul0", "parent", "d:", "classid", "d:10", "htb", "rate", "2Mbit"},
		{"class", "add", "dev", "ul0", "parent", "d:10", "classid", "d:11", "htb", "rate", "256Kbit", "prio", "0"},
		{"qdisc", "add", "dev", "ul0", "parent", "d:11", "handle", "11:", "fq_codel"},
		{"filter", "add", "dev", "ul0", "parent", "d:", "prio", "10", "protocol", "ip", "u32", "match", "ip", "dst", "172.16.20.2/32", "flowid", "d:11"},
	} {
		tcIn(t, fd, cmd...)
	}
	k := newKernel(t, fd)
	targets := []QoSTarget{{Dst: a2, Policy: "branch-2m"}}
	if err := k.SetQoS(qosPolicies(), targets); err != nil {
		t.Fatal(err)
	}
	classes := htbLines(tcIn(t, fd, "class", "show", "dev", "ul0"))
	t.Logf("after the rebuild:\n%s", classes)
	if strings.Contains(classes, "d:10 ") || strings.Contains(classes, "d:11 ") {
		t.Errorf("classes of the previous layout left:\n%s", classes)
	}
	if want := "class htb " + bucketOf(a2) + ":200 root rate 2Mbit ceil 2Mbit"; !strings.Contains(classes, want) {
		t.Errorf("tc class show lacks %q", want)
	}
	ef := udpTOS(t, fd, 46<<2)
	sendAndCount(t, k, ef, a2, "voice", 4)
	k2 := newKernel(t, fd)
	if err := k2.SetQoS(qosPolicies(), targets); err != nil {
		t.Fatal(err)
	}
	if n := k2.qosChanges.Load(); n != 0 {
		t.Errorf("adopting the rebuilt tree made %d changes, want 0", n)
	}
}
