package kernel

import (
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
)

// espTransport installs, in the namespace of h, the ESP transport-mode states
// and GRE policies between local and remote (SPI out, SPI in), as charon
// does for a dmvpnd peer.
func espTransport(t *testing.T, h *netlink.Handle, local, remote netip.Addr, spiOut, spiIn int) {
	t.Helper()
	keyOut := []byte("0123456789abcdefSAL1")
	keyIn := []byte("fedcba9876543210SAL2")
	if spiOut > spiIn { // the peer's outbound key is our inbound key
		keyOut, keyIn = keyIn, keyOut
	}
	l, r := net.IP(local.AsSlice()), net.IP(remote.AsSlice())
	for _, s := range []struct {
		src, dst net.IP
		spi      int
		key      []byte
	}{{l, r, spiOut, keyOut}, {r, l, spiIn, keyIn}} {
		st := &netlink.XfrmState{
			Src: s.src, Dst: s.dst, Proto: netlink.XFRM_PROTO_ESP, Mode: netlink.XFRM_MODE_TRANSPORT,
			Spi: s.spi, Reqid: 9, Aead: &netlink.XfrmStateAlgo{Name: "rfc4106(gcm(aes))", Key: s.key, ICVLen: 128},
		}
		if err := h.XfrmStateAdd(st); err != nil {
			t.Fatalf("add ESP state (needs esp4): %v", err)
		}
	}
	for _, p := range []struct {
		src, dst net.IP
		dir      netlink.Dir
	}{{l, r, netlink.XFRM_DIR_OUT}, {r, l, netlink.XFRM_DIR_IN}} {
		pol := &netlink.XfrmPolicy{
			Src:   &net.IPNet{IP: p.src, Mask: net.CIDRMask(32, 32)},
			Dst:   &net.IPNet{IP: p.dst, Mask: net.CIDRMask(32, 32)},
			Proto: 47, Dir: p.dir,
			Tmpls: []netlink.XfrmPolicyTmpl{{Src: p.src, Dst: p.dst, Proto: netlink.XFRM_PROTO_ESP, Mode: netlink.XFRM_MODE_TRANSPORT, Reqid: 9}},
		}
		if err := h.XfrmPolicyAdd(pol); err != nil {
			t.Fatal(err)
		}
	}
}

func guardCounters(t *testing.T, g *GREGuard) GuardCounters {
	t.Helper()
	c, err := g.Counters()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestPrivGREGuard proves the cleartext GRE guard in both directions: GRE
// that arrives without an SA is dropped and counted by the receiver, GRE
// that no SA would carry is dropped and counted by the sender, and GRE
// carried by ESP passes both guards untouched.
func TestPrivGREGuard(t *testing.T) {
	hub, spokes := hubAndSpokes(t, 1)
	spoke := spokes[0]
	hubNBMA := netip.MustParseAddr("172.16.1.1")
	pinger := icmpIn(t, spoke.fd, 0x6161)
	seq := uint16(0)
	ping := func() error { seq++; return pinger.ping(hub.tun, seq, 2*time.Second) }
	if err := ping(); err != nil {
		t.Fatalf("cleartext GRE without guards: %v", err)
	}

	// The hub's tunnel has no local address: its guard matches every GRE packet.
	hubGuard := NewGREGuard(GuardConfig{NetNS: hub.fd})
	if err := hubGuard.Install(netip.Addr{}, SourceBinding{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = hubGuard.Remove() })
	if err := ping(); err == nil {
		t.Fatal("cleartext GRE reached the hub through its guard")
	}
	hc := guardCounters(t, hubGuard)
	if hc.InPackets == 0 || hc.InBytes == 0 || hc.OutPackets != 0 {
		t.Fatalf("hub guard counters %+v, want inbound drops only", hc)
	}

	spokeGuard := NewGREGuard(GuardConfig{NetNS: spoke.fd})
	if err := spokeGuard.Install(spoke.nbma, SourceBinding{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = spokeGuard.Remove() })
	if err := ping(); err == nil {
		t.Fatal("cleartext GRE left the spoke through its guard")
	}
	sc := guardCounters(t, spokeGuard)
	if sc.OutPackets == 0 || sc.InPackets != 0 {
		t.Fatalf("spoke guard counters %+v, want outbound drops only", sc)
	}
	if got := guardCounters(t, hubGuard); got != hc {
		t.Fatalf("hub guard counted %+v after the spoke dropped at its output (before %+v)", got, hc)
	}

	// With ESP between the NBMA addresses the same GRE passes both guards.
	espTransport(t, spoke.h, spoke.nbma, hubNBMA, 0x1001, 0x2001)
	espTransport(t, hub.h, hubNBMA, spoke.nbma, 0x2001, 0x1001)
	if err := ping(); err != nil {
		t.Fatalf("GRE over ESP through the guards: %v", err)
	}
	if got := guardCounters(t, spokeGuard); got != sc {
		t.Errorf("spoke guard counted protected GRE: %+v, before %+v", got, sc)
	}
	if got := guardCounters(t, hubGuard); got != hc {
		t.Errorf("hub guard counted protected GRE: %+v, before %+v", got, hc)
	}

	// Reinstalling replaces the table (counters restart); removing twice is fine.
	if err := spokeGuard.Install(spoke.nbma, SourceBinding{}); err != nil {
		t.Fatal(err)
	}
	if got := guardCounters(t, spokeGuard); got != (GuardCounters{}) {
		t.Errorf("counters after reinstall: %+v", got)
	}
	for range 2 {
		if err := spokeGuard.Remove(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestPrivTunnelSourceBinding proves the hub's tunnel-source binding over
// ESP (so that the decrypted GRE is what the rules see): GRE whose inner
// source is a tunnel address passes only from the NBMA that address is
// bound to; a key-holding spoke that sends with another spoke's tunnel
// address, or with GRE flags that move the inner header, is dropped and
// counted exactly; the set follows SetBoundSources incrementally and
// survives a reinstall.
func TestPrivTunnelSourceBinding(t *testing.T) {
	hub, spokes := hubAndSpokes(t, 2)
	s1, s2 := spokes[0], spokes[1]
	for i, s := range spokes {
		hubNBMA := netip.AddrFrom4([4]byte{172, 16, byte(i + 1), 1})
		espTransport(t, s.h, s.nbma, hubNBMA, 0x1001+i, 0x2001+i)
		espTransport(t, hub.h, hubNBMA, s.nbma, 0x2001+i, 0x1001+i)
	}
	guard := NewGREGuard(GuardConfig{NetNS: hub.fd})
	bind := SourceBinding{Prefix: netip.MustParsePrefix("10.0.0.0/24"), Key: testKey}
	if err := guard.Install(netip.Addr{}, bind); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = guard.Remove() })
	p1, p2 := icmpIn(t, s1.fd, 0x6201), icmpIn(t, s2.fd, 0x6202)
	seq := uint16(0)
	ping := func(p *icmpConn) error { seq++; return p.ping(hub.tun, seq, 2*time.Second) }
	unbound := func() uint64 { return guardCounters(t, guard).UnboundPackets }

	if err := ping(p1); err == nil {
		t.Fatal("a tunnel-sourced ping passed an empty binding set")
	}
	if n := unbound(); n != 1 {
		t.Fatalf("unbound drops %d after one echo, want 1", n)
	}
	want := []BoundSource{{s1.nbma, s1.tun}, {s2.nbma, s2.tun}}
	for range 2 { // idempotent
		if err := guard.SetBoundSources(want); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := guard.BoundSources(); err != nil || !slices.Equal(got, want) {
		t.Fatalf("bound sources %v (%v), want %v", got, err, want)
	}
	for _, p := range []*icmpConn{p1, p2} {
		if err := ping(p); err != nil {
			t.Fatalf("bound spoke: %v", err)
		}
	}
	// Incremental updates from what the guard last wrote (no re-read).
	for _, w := range [][]BoundSource{want[:1], want} {
		if err := guard.SetBoundSources(w); err != nil {
			t.Fatal(err)
		}
		if got, err := guard.BoundSources(); err != nil || !slices.Equal(got, w) {
			t.Fatalf("bound sources %v (%v), want %v", got, err, w)
		}
	}

	// s2 holds a valid SA and sends with s1's tunnel address as source.
	lo, err := s2.h.LinkByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	addLinkAddr(t, s2.h, lo, s1.tun.String()+"/32")
	spoof := listenIn(t, s2.fd, "ip4:icmp", s1.tun.String())
	before := unbound()
	const forged = 5
	for i := range forged {
		if _, err := spoof.WriteTo(icmpEcho(0x6203, uint16(i)), &net.IPAddr{IP: hub.tun.AsSlice()}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "forged echoes counted", 2*time.Second, func() (bool, error) { return unbound() >= before+forged, nil })
	if got := unbound(); got != before+forged {
		t.Errorf("unbound drops grew by %d for %d forged echoes", got-before, forged)
	}

	// GRE with the checksum flag (C|K): the inner header moves by 4
	// bytes; the layout rule drops it whatever it carries.
	raw := listenIn(t, s2.fd, "ip4:gre", "0.0.0.0")
	inner := append([]byte{0x45, 0, 0, 20 + 14, 0, 0, 0, 0, 64, 1, 0, 0}, append(s2.tun.AsSlice(), hub.tun.AsSlice()...)...)
	inner = append(inner, icmpEcho(0x6204, 1)...)
	gre := append([]byte{0xa0, 0, 0x08, 0, 0, 0, 0, 0, 0, 0, 0, testKey}, inner...)
	before = unbound()
	if _, err := raw.WriteTo(gre, &net.IPAddr{IP: net.IPv4(172, 16, 2, 1)}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "GRE with other flags counted", 2*time.Second, func() (bool, error) { return unbound() == before+1, nil })

	// Reinstalling keeps the set; unbinding s2 cuts it off alone.
	if err := guard.Install(netip.Addr{}, bind); err != nil {
		t.Fatal(err)
	}
	if got, err := guard.BoundSources(); err != nil || !slices.Equal(got, want) {
		t.Fatalf("bound sources after reinstall %v (%v), want %v", got, err, want)
	}
	if err := guard.SetBoundSources(want[:1]); err != nil {
		t.Fatal(err)
	}
	if err := ping(p2); err == nil {
		t.Error("an unbound spoke's tunnel-sourced ping passed")
	}
	if err := ping(p1); err != nil {
		t.Errorf("bound spoke after s2 was unbound: %v", err)
	}
	// Without the binding there is no set to set.
	if err := guard.Install(netip.Addr{}, SourceBinding{}); err != nil {
		t.Fatal(err)
	}
	if err := guard.SetBoundSources(want); err == nil {
		t.Error("SetBoundSources succeeded without a binding installed")
	}
	if err := ping(p2); err != nil {
		t.Errorf("without the binding: %v", err)
	}
}
