package kernel

import (
	"net"
	"net/netip"
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
	if err := hubGuard.Install(netip.Addr{}); err != nil {
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
	if err := spokeGuard.Install(spoke.nbma); err != nil {
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
	if err := spokeGuard.Install(spoke.nbma); err != nil {
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
