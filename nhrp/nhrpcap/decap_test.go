package nhrpcap_test

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/dmvpnd/dmvpnd/nhrp/nhrpcap"
	"github.com/dmvpnd/dmvpnd/nhrp/nhrpcap/nhrpcaptest"
)

var (
	src4 = netip.MustParseAddr("198.51.100.2")
	dst4 = netip.MustParseAddr("198.51.100.1")
	src6 = netip.MustParseAddr("2001:db8::2")
	dst6 = netip.MustParseAddr("2001:db8::1")
	// payload stands in for an NHRP packet: Extract does not decode it.
	payload = []byte{0, 1, 8, 0, 0, 0, 0, 0, 0, 1, 0, 24, 0xaa, 0xbb, 0, 0, 1, 3, 4, 0, 0xde, 0xad}
)

// ipPacket returns the IP packet (no link header) EthernetGRE builds.
func ipPacket(t *testing.T, src, dst netip.Addr, key uint32, hasKey bool, b []byte) []byte {
	t.Helper()
	fr, err := nhrpcaptest.EthernetGRE(src, dst, key, hasKey, b)
	if err != nil {
		t.Fatal(err)
	}
	return fr[14:]
}

func ipv4(proto byte, body []byte) []byte {
	ip := make([]byte, 20, 20+len(body))
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(20+len(body)))
	ip[8], ip[9] = 64, proto
	s, d := src4.As4(), dst4.As4()
	copy(ip[12:], s[:])
	copy(ip[16:], d[:])
	return append(ip, body...)
}

func ipv6(next byte, body []byte) []byte {
	ip := make([]byte, 40, 40+len(body))
	ip[0] = 0x60
	binary.BigEndian.PutUint16(ip[4:], uint16(len(body)))
	ip[6], ip[7] = next, 64
	s, d := src6.As16(), dst6.As16()
	copy(ip[8:], s[:])
	copy(ip[24:], d[:])
	return append(ip, body...)
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func TestExtract(t *testing.T) {
	eth := func(etherType uint16, tags ...uint16) []byte {
		b := []byte{2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1}
		for i := 0; i+1 < len(tags); i += 2 {
			b = binary.BigEndian.AppendUint16(b, tags[i])
			b = binary.BigEndian.AppendUint16(b, tags[i+1])
		}
		return binary.BigEndian.AppendUint16(b, etherType)
	}
	sll := func(proto uint16) []byte {
		b := make([]byte, 16)
		binary.BigEndian.PutUint16(b[2:], 778) // ARPHRD_IPGRE
		binary.BigEndian.PutUint16(b[4:], 4)
		binary.BigEndian.PutUint16(b[14:], proto)
		return b
	}
	sll2 := func(proto uint16) []byte {
		b := make([]byte, 20)
		binary.BigEndian.PutUint16(b, proto)
		binary.BigEndian.PutUint32(b[4:], 7)
		return b
	}
	gre4 := ipPacket(t, src4, dst4, 42, true, payload)
	gre4NoKey := ipPacket(t, src4, dst4, 0, false, payload)
	gre6 := ipPacket(t, src6, dst6, 7, true, payload)
	want4 := nhrpcap.Packet{Src: src4, Dst: dst4, Encap: nhrpcap.EncapGRE, GREKey: 42, HasGREKey: true, NHRP: payload}
	want6 := nhrpcap.Packet{Src: src6, Dst: dst6, Encap: nhrpcap.EncapGRE, GREKey: 7, HasGREKey: true, NHRP: payload}
	with := func(p nhrpcap.Packet, f func(*nhrpcap.Packet)) nhrpcap.Packet { f(&p); return p }

	// GRE with checksum, key and sequence number present.
	greCKS := cat([]byte{0xb0, 0, 0x20, 0x01, 0x12, 0x34, 0, 0, 0, 0, 0, 9, 0, 0, 0, 1}, payload)
	// IPv6 with hop-by-hop and destination options before GRE.
	hbh := []byte{60, 0, 1, 4, 0, 0, 0, 0}
	dopt := []byte{47, 0, 1, 4, 0, 0, 0, 0}
	gre6ext := ipv6(0, cat(hbh, dopt, []byte{0x20, 0, 0x20, 0x01, 0, 0, 0, 7}, payload))
	// IPv6 first fragment (more fragments follow).
	frag := []byte{47, 0, 0, 1, 0, 0, 0, 1}
	gre6frag := ipv6(44, cat(frag, []byte{0, 0, 0x20, 0x01}, payload))
	// IPv4 with 4 octets of options, NHRP over IP protocol 54.
	opt := ipv4(54, payload)
	opt = cat([]byte{0x46}, opt[1:20], []byte{1, 1, 1, 0}, payload)
	binary.BigEndian.PutUint16(opt[2:], uint16(len(opt)))
	nonFirst := ipv4(47, cat([]byte{0, 0, 0x20, 0x01}, payload))
	nonFirst[6], nonFirst[7] = 0, 8
	firstFrag := ipv4(47, cat([]byte{0, 0, 0x20, 0x01}, payload))
	firstFrag[6] = 0x20
	le := func(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }

	tests := []struct {
		name string
		lt   nhrpcap.LinkType
		data []byte
		want nhrpcap.Packet
		ok   bool
	}{
		{"ethernet ipv4 gre key", nhrpcap.LinkTypeEthernet, cat(eth(0x0800), gre4), want4, true},
		{"ethernet ipv4 gre no key", nhrpcap.LinkTypeEthernet, cat(eth(0x0800), gre4NoKey), with(want4, func(p *nhrpcap.Packet) { p.GREKey, p.HasGREKey = 0, false }), true},
		{"ethernet padding trimmed", nhrpcap.LinkTypeEthernet, cat(eth(0x0800), gre4, make([]byte, 12)), want4, true},
		{"ethernet 802.1q", nhrpcap.LinkTypeEthernet, cat(eth(0x0800, 0x8100, 0x2064), gre4), with(want4, func(p *nhrpcap.Packet) { p.VLANs = []uint16{100} }), true},
		{"ethernet qinq", nhrpcap.LinkTypeEthernet, cat(eth(0x0800, 0x88a8, 0x000a, 0x8100, 0x0014), gre4), with(want4, func(p *nhrpcap.Packet) { p.VLANs = []uint16{10, 20} }), true},
		{"ethernet ipv6 gre", nhrpcap.LinkTypeEthernet, cat(eth(0x86dd), gre6), want6, true},
		{"ethernet ipv6 extension headers", nhrpcap.LinkTypeEthernet, cat(eth(0x86dd), gre6ext), want6, true},
		{"ipv6 first fragment", nhrpcap.LinkTypeRaw, gre6frag, with(want6, func(p *nhrpcap.Packet) { p.GREKey, p.HasGREKey, p.Truncated = 0, false, true }), true},
		{"linux sll", nhrpcap.LinkTypeLinuxSLL, cat(sll(0x0800), gre4), want4, true},
		{"linux sll nhrp on tunnel", nhrpcap.LinkTypeLinuxSLL, cat(sll(0x2001), payload), nhrpcap.Packet{Encap: nhrpcap.EncapGRE, NHRP: payload}, true},
		{"linux sll2", nhrpcap.LinkTypeLinuxSLL2, cat(sll2(0x86dd), gre6), want6, true},
		{"raw ipv4", nhrpcap.LinkTypeRaw, gre4, want4, true},
		{"raw ipv6", nhrpcap.LinkTypeRaw, gre6, want6, true},
		{"linktype ipv4", nhrpcap.LinkTypeIPv4, gre4, want4, true},
		{"linktype ipv6", nhrpcap.LinkTypeIPv6, gre6, want6, true},
		{"dlt raw 12", nhrpcap.LinkTypeRawAlt12, gre4, want4, true},
		{"dlt raw 14", nhrpcap.LinkTypeRawAlt14, gre6, want6, true},
		{"null ipv4", nhrpcap.LinkTypeNull, cat(le(2), gre4), want4, true},
		{"null ipv6", nhrpcap.LinkTypeNull, cat(le(30), gre6), want6, true},
		{"gre checksum key sequence", nhrpcap.LinkTypeRaw, ipv4(47, greCKS), with(want4, func(p *nhrpcap.Packet) { p.GREKey = 9 }), true},
		{"ip protocol 54 with options", nhrpcap.LinkTypeRaw, opt, nhrpcap.Packet{Src: src4, Dst: dst4, Encap: nhrpcap.EncapIP, NHRP: payload}, true},
		{"truncated capture", nhrpcap.LinkTypeRaw, gre4[:len(gre4)-5], with(want4, func(p *nhrpcap.Packet) { p.NHRP, p.Truncated = payload[:len(payload)-5], true }), true},
		{"ipv4 first fragment", nhrpcap.LinkTypeRaw, firstFrag, with(want4, func(p *nhrpcap.Packet) { p.GREKey, p.HasGREKey, p.Truncated = 0, false, true }), true},
		{"ipv4 later fragment", nhrpcap.LinkTypeRaw, nonFirst, nhrpcap.Packet{}, false},
		{"gre carrying ipv4", nhrpcap.LinkTypeRaw, ipv4(47, cat([]byte{0, 0, 8, 0}, payload)), nhrpcap.Packet{}, false},
		{"gre version 1", nhrpcap.LinkTypeRaw, ipv4(47, cat([]byte{0, 1, 0x20, 0x01}, payload)), nhrpcap.Packet{}, false},
		{"gre key truncated", nhrpcap.LinkTypeRaw, ipv4(47, []byte{0x20, 0, 0x20, 0x01, 0}), nhrpcap.Packet{}, false},
		{"udp", nhrpcap.LinkTypeRaw, ipv4(17, payload), nhrpcap.Packet{}, false},
		{"arp", nhrpcap.LinkTypeEthernet, cat(eth(0x0806), payload), nhrpcap.Packet{}, false},
		{"short ethernet", nhrpcap.LinkTypeEthernet, []byte{1, 2, 3}, nhrpcap.Packet{}, false},
		{"vlan tag cut", nhrpcap.LinkTypeEthernet, cat(eth(0x8100), []byte{0}), nhrpcap.Packet{}, false},
		{"short ipv4", nhrpcap.LinkTypeRaw, gre4[:19], nhrpcap.Packet{}, false},
		{"bad ihl", nhrpcap.LinkTypeRaw, cat([]byte{0x44}, gre4[1:]), nhrpcap.Packet{}, false},
		{"short ipv6", nhrpcap.LinkTypeRaw, gre6[:39], nhrpcap.Packet{}, false},
		{"ipv6 extension header cut", nhrpcap.LinkTypeRaw, ipv6(0, []byte{60, 4}), nhrpcap.Packet{}, false},
		{"unknown link type", 147, gre4, nhrpcap.Packet{}, false},
		{"empty raw", nhrpcap.LinkTypeRaw, nil, nhrpcap.Packet{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.want.Frame = 3
			got, ok := nhrpcap.Extract(nhrpcap.Frame{Number: 3, LinkType: tt.lt, Data: tt.data, OriginalLength: len(tt.data)})
			if ok != tt.ok {
				t.Fatalf("ok = %v, want %v", ok, tt.ok)
			}
			if !ok {
				return
			}
			if diff := cmp.Diff(tt.want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
