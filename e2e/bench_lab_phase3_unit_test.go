package e2e

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/dmvpnd/dmvpnd/nhrp"
	"github.com/dmvpnd/dmvpnd/nhrp/nhrpcap"
	"github.com/dmvpnd/dmvpnd/nhrp/nhrpcap/nhrpcaptest"
)

func TestBLRouteAdded(t *testing.T) {
	lines := []string{
		"[2026-12-02T13:05:43.100000] 192.0.2.99 dev lo scope link",
		"[2026-12-02T13:05:43.200000] Deleted 10.1.2.0/24 via 10.0.0.3 dev gre1 proto 157 onlink",
		"[2026-12-02T13:05:43.300000] 10.1.2.0/24 via 10.0.0.1 dev gre1 onlink", // the static route via the hub
		"[2026-12-02T13:05:43.412345] 10.1.2.0/24 nhid 18 via 10.0.0.3 dev gre1 proto nhrp metric 20 onlink",
		"[2026-12-02T13:05:44.000000] 10.1.2.0/24 via 10.0.0.3 dev gre1 proto 157 onlink",
	}
	at, ok := blRouteAdded(lines, netip.MustParsePrefix("10.1.2.0/24"), netip.MustParseAddr("10.0.0.3"))
	if want := time.Date(2026, 12, 2, 13, 5, 43, 412345000, time.UTC); !ok || !at.Equal(want) {
		t.Errorf("got %v %v, want %v", at, ok, want)
	}
	if _, ok := blRouteAdded(lines[:3], netip.MustParsePrefix("10.1.2.0/24"), netip.MustParseAddr("10.0.0.3")); ok {
		t.Error("a deletion and a route via the hub were taken for the shortcut")
	}
}

// blSLL is a Linux cooked (v1) frame of protocol et carrying b.
func blSLL(et uint16, b []byte) []byte {
	h := make([]byte, 16)
	binary.BigEndian.PutUint16(h[14:], et)
	return append(h, b...)
}

// blIPv4 is a bare IPv4 header of protocol proto from src to dst with 8
// octets of payload.
func blIPv4(src, dst string, proto byte) []byte {
	b := make([]byte, 28)
	b[0], b[9] = 0x45, proto
	binary.BigEndian.PutUint16(b[2:], 28)
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	copy(b[12:], s[:])
	copy(b[16:], d[:])
	return b
}

func TestBLP3Captures(t *testing.T) {
	dir := t.TempDir()
	t0 := time.Date(2026, 12, 2, 13, 0, 0, 0, time.UTC)
	ti, err := nhrp.NewTrafficIndication(netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.1.1.1"), blIPv4("10.1.1.1", "10.1.2.1", 1)).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, lt nhrpcap.LinkType, frames ...[]byte) string {
		path := filepath.Join(dir, name)
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		w := nhrpcaptest.NewWriter(f, lt)
		for i, fr := range frames {
			if err := w.WriteFrame(t0.Add(time.Duration(i)*time.Millisecond), fr); err != nil {
				t.Fatal(err)
			}
		}
		if err := errors.Join(w.Flush(), f.Close()); err != nil {
			t.Fatal(err)
		}
		return path
	}
	s1, s2 := netip.MustParseAddr("10.1.1.1"), netip.MustParseAddr("10.1.2.1")
	// Hub gre1: a traffic indication before the flow (another one), a
	// packet of another flow, the flow in (2 ms) and out (3 ms), the
	// traffic indication (5 ms).
	hub := write("hub.pcap", nhrpcap.LinkTypeLinuxSLL,
		blSLL(0x2001, ti), blSLL(0x0800, blIPv4("10.1.1.1", "10.1.0.1", 1)),
		blSLL(0x0800, blIPv4("10.1.1.1", "10.1.2.1", 1)), blSLL(0x0800, blIPv4("10.1.1.1", "10.1.2.1", 1)),
		blSLL(0x0800, blIPv4("10.1.1.1", "10.1.2.1", 6)), blSLL(0x2001, ti))
	h, i, err := blP3Hairpin(hub, s1, s2)
	if err != nil || !h.Equal(t0.Add(2*time.Millisecond)) || !i.Equal(t0.Add(5*time.Millisecond)) {
		t.Errorf("hairpin %v, indication %v, %v; want +2 ms and +5 ms", h.Sub(t0), i.Sub(t0), err)
	}
	if at, ok, err := blP3FirstPacket(hub, s1, s2); err != nil || !ok || !at.Equal(t0.Add(2*time.Millisecond)) {
		t.Errorf("first packet %v %v %v, want +2 ms", at.Sub(t0), ok, err)
	}
	// s1's eth0: GRE to the hub, then ESP to the hub, then ESP to s2.
	eth := func(b []byte) []byte {
		h := make([]byte, 14)
		binary.BigEndian.PutUint16(h[12:], 0x0800)
		return append(h, b...)
	}
	under := write("eth.pcap", nhrpcap.LinkTypeEthernet,
		eth(blIPv4("198.51.100.2", "198.51.100.1", 47)), eth(blIPv4("198.51.100.2", "198.51.100.1", 50)), eth(blIPv4("198.51.100.2", "198.51.100.3", 50)))
	if at, ok, err := blP3FirstESP(under, netip.MustParseAddr("198.51.100.2"), netip.MustParseAddr("198.51.100.3")); err != nil || !ok || !at.Equal(t0.Add(2*time.Millisecond)) {
		t.Errorf("first ESP %v %v %v, want +2 ms", at.Sub(t0), ok, err)
	}
	// Nothing of the flow: not found, no error.
	if _, ok, err := blP3FirstESP(hub, netip.MustParseAddr("198.51.100.2"), netip.MustParseAddr("198.51.100.3")); ok || err != nil {
		t.Errorf("ESP found in a capture without: %v %v", ok, err)
	}
	if h, i, err := blP3Hairpin(under, s1, s2); err != nil || !h.IsZero() || !i.IsZero() {
		t.Errorf("hairpin in an underlay capture: %v %v %v", h, i, err)
	}
}
