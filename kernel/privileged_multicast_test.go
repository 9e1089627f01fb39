package kernel

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// mcastListener joins group on the namespace's gre1 and listens on port.
func mcastListener(t *testing.T, g *greNode, group netip.AddrPort) *net.UDPConn {
	t.Helper()
	var c *net.UDPConn
	if err := inNetNS(g.fd, func() error {
		ifi, err := net.InterfaceByIndex(g.ifindex)
		if err != nil {
			return err
		}
		c, err = net.ListenMulticastUDP("udp4", ifi, net.UDPAddrFromAddrPort(group))
		return err
	}); err != nil {
		t.Fatalf("join %s: %v", group, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// mcastSender is a UDP socket in g whose multicast leaves through gre1.
func mcastSender(t *testing.T, g *greNode) *net.UDPConn {
	t.Helper()
	c := udpIn(t, g.fd, g.tun.String()+":0")
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptIPMreqn(int(fd), unix.IPPROTO_IP, unix.IP_MULTICAST_IF, &unix.IPMreqn{Ifindex: int32(g.ifindex)})
	}); err != nil || serr != nil {
		t.Fatal(err, serr)
	}
	return c
}

// recvWithin reads one datagram or fails the test after timeout.
func recvWithin(c *net.UDPConn, timeout time.Duration) (string, netip.AddrPort, error) {
	if err := c.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return "", netip.AddrPort{}, err
	}
	buf := make([]byte, 2048)
	n, from, err := c.ReadFromUDPAddrPort(buf)
	return string(buf[:n]), from, err
}

// TestPrivMulticast proves capture and replication on real mGRE: a packet
// sent to a link-local group on the hub's gre1 is logged to NFLOG and its
// original dropped (the sender sees EPERM); copies sent through the
// replication socket reach each spoke's gre1 as the same multicast packet;
// a configured extra group is captured too; with ESP towards one spoke and
// the cleartext GRE guard, that spoke's copy travels through its SA while
// the copy to the spoke without an SA never leaves the hub.
func TestPrivMulticast(t *testing.T) {
	hub, spokes := hubAndSpokes(t, 2)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)

	trap, err := NewMulticastTrap(MulticastConfig{NetNS: hub.fd, Group: 9,
		Groups: []netip.Prefix{netip.MustParsePrefix("239.1.0.0/16")}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := trap.Install(hub.ifindex); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = trap.Remove() })
	if err := trap.Install(hub.ifindex); err != nil { // replace is idempotent
		t.Fatal(err)
	}
	captured, err := trap.Packets(ctx)
	if err != nil {
		t.Fatal(err)
	}
	mc, err := ListenMulticast(ListenMulticastConfig{NetNS: hub.fd, Ifindex: hub.ifindex})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mc.Close() })

	group := netip.MustParseAddrPort("224.0.0.100:5000")
	extra := netip.MustParseAddrPort("239.1.2.3:5001") // another port: both sockets bind 0.0.0.0
	var ls, lx []*net.UDPConn
	for _, s := range spokes {
		ls = append(ls, mcastListener(t, s, group))
		lx = append(lx, mcastListener(t, s, extra))
	}
	sender := mcastSender(t, hub)

	capture := func(payload string, to netip.AddrPort) []byte {
		t.Helper()
		_, err := sender.WriteToUDPAddrPort([]byte(payload), to)
		if !errors.Is(err, syscall.EPERM) {
			t.Fatalf("send to %s: err %v, want EPERM (the original is dropped)", to, err)
		}
		select {
		case p := <-captured:
			if got := netip.AddrFrom4([4]byte(p[16:20])); got != to.Addr() {
				t.Fatalf("captured packet to %s, want %s", got, to.Addr())
			}
			if got := netip.AddrFrom4([4]byte(p[12:16])); got != hub.tun {
				t.Fatalf("captured packet from %s, want %s", got, hub.tun)
			}
			return p
		case <-time.After(10 * time.Second):
			t.Fatalf("nothing captured for %s", to)
		}
		return nil
	}
	expect := func(c *net.UDPConn, payload string) {
		t.Helper()
		got, from, err := recvWithin(c, 10*time.Second)
		if err != nil || got != payload || from.Addr() != hub.tun {
			t.Fatalf("received %q from %s (%v), want %q from %s", got, from, err, payload, hub.tun)
		}
	}

	pkt := capture("hello 1", group)
	dsts := []netip.Addr{spokes[0].nbma, spokes[1].nbma}
	if n, err := mc.Send(pkt, dsts); n != 2 || err != nil {
		t.Fatalf("Send = %d, %v; want 2 copies", n, err)
	}
	expect(ls[0], "hello 1")
	expect(ls[1], "hello 1")

	pkt = capture("extra group", extra)
	if n, err := mc.Send(pkt, dsts[1:]); n != 1 || err != nil {
		t.Fatalf("Send = %d, %v; want 1 copy", n, err)
	}
	expect(lx[1], "extra group")

	// Not captured: another group leaves as the kernel sends it (no EPERM).
	if _, err := sender.WriteToUDPAddrPort([]byte("x"), netip.MustParseAddrPort("239.2.0.1:5000")); err != nil {
		t.Fatalf("uncaptured group: %v", err)
	}

	// IPsec: an SA towards spoke 1 only, guards on both sides.
	hubNBMA := netip.MustParseAddr("172.16.1.1")
	espTransport(t, spokes[0].h, spokes[0].nbma, hubNBMA, 0x1001, 0x2001)
	espTransport(t, hub.h, hubNBMA, spokes[0].nbma, 0x2001, 0x1001)
	hubGuard := NewGREGuard(GuardConfig{NetNS: hub.fd})
	if err := hubGuard.Install(netip.Addr{}, SourceBinding{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = hubGuard.Remove() })
	spokeGuard := NewGREGuard(GuardConfig{NetNS: spokes[0].fd})
	if err := spokeGuard.Install(spokes[0].nbma, SourceBinding{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = spokeGuard.Remove() })

	pkt = capture("hello over ESP", group)
	if n, err := mc.Send(pkt, dsts); n != 2 || err != nil {
		t.Fatalf("Send = %d, %v; want 2 copies handed to the kernel", n, err)
	}
	expect(ls[0], "hello over ESP")
	if got := guardCounters(t, spokeGuard); got.InPackets != 0 {
		t.Errorf("spoke 1 received cleartext GRE: %+v", got)
	}
	// The copy to spoke 2 has no SA: the hub's guard drops it on output.
	if got := guardCounters(t, hubGuard); got.OutPackets != 1 || got.InPackets != 0 {
		t.Errorf("hub guard %+v, want exactly the copy to spoke 2 dropped on output", got)
	}
	if _, _, err := recvWithin(ls[1], 500*time.Millisecond); err == nil {
		t.Error("spoke 2 received a copy that no SA protects")
	}
	// Bad input is refused before any system call.
	if _, err := mc.Send([]byte{0x60}, dsts); err == nil {
		t.Error("non-IPv4 packet accepted")
	}
	if _, err := mc.Send(pkt, []netip.Addr{netip.MustParseAddr("2001:db8::1")}); err == nil {
		t.Error("IPv6 NBMA accepted")
	}
	if err := trap.Remove(); err != nil {
		t.Fatal(err)
	}
	if err := trap.Remove(); err != nil {
		t.Fatalf("second Remove: %v", err)
	}
	if _, err := sender.WriteToUDPAddrPort([]byte("after remove"), group); err != nil {
		t.Fatalf("send after Remove: %v", err)
	}
}
