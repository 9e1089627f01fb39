package kernel

import (
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
)

// greNode is one namespace with an underlay and an mGRE tunnel.
type greNode struct {
	fd      int
	h       *netlink.Handle
	k       *Kernel
	nbma    netip.Addr // underlay address ("" for the hub's wildcard)
	tun     netip.Addr // tunnel address
	ifindex int
	cfg     TunnelConfig
}

const testKey = 42

// listenNHRP opens an NHRP socket on g's tunnel (rcvBuf 0: the default),
// closed at the end of the test.
func (g *greNode) listenNHRP(t *testing.T, rcvBuf int) *NHRPConn {
	t.Helper()
	c, err := ListenNHRP(ListenNHRPConfig{NetNS: g.fd, Ifindex: g.ifindex, RcvBuf: rcvBuf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// hubAndSpokes builds a hub and n spokes: spoke i (1-based) reaches the hub
// over veth s<i>/h<i> in 172.16.i.0/24 (hub .1, spoke .2). The hub's tunnel
// has a wildcard local address; tunnel addresses are 10.0.0.1 (hub) and
// 10.0.0.(i+1). Each spoke has a PERMANENT neighbor entry for the hub and a
// route 10.0.0.0/24 via 10.0.0.1; the hub routes 10.0.0.0/24 on the tunnel and
// has PERMANENT entries for every spoke. The hub forwards.
func hubAndSpokes(t *testing.T, n int) (hub *greNode, spokes []*greNode) {
	t.Helper()
	requireGRE(t)
	hubFd := newNetNS(t)
	hub = &greNode{fd: hubFd, h: nsHandle(t, hubFd), tun: netip.MustParseAddr("10.0.0.1")}
	mustSysctl(t, hubFd, "net/ipv4/ip_forward", "1")
	for i := 1; i <= n; i++ {
		fd := newNetNS(t)
		vethPair(t, hubFd, fmt.Sprintf("h%d", i), fmt.Sprintf("172.16.%d.1/24", i), fd, fmt.Sprintf("s%d", i), fmt.Sprintf("172.16.%d.2/24", i))
		s := &greNode{
			fd: fd, h: nsHandle(t, fd),
			nbma: netip.MustParseAddr(fmt.Sprintf("172.16.%d.2", i)),
			tun:  netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)}),
		}
		addRoute(t, s.h, "0.0.0.0/0", fmt.Sprintf("172.16.%d.1", i), 0)
		spokes = append(spokes, s)
	}
	hub.up(t)
	for i, s := range spokes {
		s.up(t)
		hubNBMA := netip.MustParseAddr(fmt.Sprintf("172.16.%d.1", i+1))
		if err := s.k.ReplaceNeighbor(hub.tun, hubNBMA, true); err != nil {
			t.Fatal(err)
		}
		if err := s.k.SetRoutes([]Route{{Dst: netip.MustParsePrefix("10.0.0.0/24"), Via: hub.tun}}); err != nil {
			t.Fatal(err)
		}
		if err := hub.k.ReplaceNeighbor(s.tun, s.nbma, true); err != nil {
			t.Fatal(err)
		}
	}
	if err := hub.k.SetRoutes([]Route{{Dst: netip.MustParsePrefix("10.0.0.0/24")}}); err != nil {
		t.Fatal(err)
	}
	return hub, spokes
}

func (g *greNode) up(t *testing.T) {
	t.Helper()
	g.k = newKernel(t, g.fd)
	g.cfg = TunnelConfig{Name: "gre1", Local: g.nbma, Key: testKey, TTL: 64, MTU: 1400, Address: netip.PrefixFrom(g.tun, 32)}
	idx, err := g.k.EnsureTunnel(g.cfg)
	if err != nil {
		t.Fatal(err)
	}
	g.ifindex = idx
}

// icmpConn is a raw ICMP socket in a namespace.
type icmpConn struct {
	c  net.PacketConn
	id uint16
}

func icmpIn(t *testing.T, fd int, id uint16) *icmpConn {
	t.Helper()
	return &icmpConn{c: listenIn(t, fd, "ip4:icmp", "0.0.0.0"), id: id}
}

func icmpEcho(id, seq uint16) []byte {
	b := []byte{8, 0, 0, 0, byte(id >> 8), byte(id), byte(seq >> 8), byte(seq), 'd', 'm', 'v', 'p', 'n', 'd'}
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	cs := ^uint16(sum)
	b[2], b[3] = byte(cs>>8), byte(cs)
	return b
}

// ping sends one echo request and waits for its reply.
func (c *icmpConn) ping(dst netip.Addr, seq uint16, timeout time.Duration) error {
	if _, err := c.c.WriteTo(icmpEcho(c.id, seq), &net.IPAddr{IP: dst.AsSlice()}); err != nil {
		return err
	}
	deadline := time.Now().Add(timeout)
	buf := make([]byte, 1500)
	for {
		if err := c.c.SetReadDeadline(deadline); err != nil {
			return err
		}
		n, _, err := c.c.ReadFrom(buf)
		if err != nil {
			return fmt.Errorf("echo %d to %s: %w", seq, dst, err)
		}
		if n >= 8 && buf[0] == 0 && uint16(buf[4])<<8|uint16(buf[5]) == c.id && uint16(buf[6])<<8|uint16(buf[7]) == seq {
			return nil
		}
	}
}
