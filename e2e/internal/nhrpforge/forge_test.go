package main

import (
	"net/netip"
	"testing"

	"github.com/dmvpnd/dmvpnd/nhrp"
)

var (
	testHeader = header{
		srcNBMA:  netip.MustParseAddr("198.51.100.4"),
		srcProto: netip.MustParseAddr("10.0.0.4"),
		dstProto: netip.MustParseAddr("10.0.0.1"),
	}
	s1NBMA = netip.MustParseAddr("198.51.100.2")
)

// roundTrip encodes p and decodes it again with the project's codec.
func roundTrip(t *testing.T, p *nhrp.Packet) *nhrp.Packet {
	t.Helper()
	b, err := p.Marshal()
	if err != nil {
		t.Fatalf("%s: %v", p.Type, err)
	}
	q, err := nhrp.Parse(b)
	if err != nil {
		t.Fatalf("%s does not decode: %v", p.Type, err)
	}
	return q
}

func TestParseCIE(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    cieSpec
		wantErr bool
	}{
		{"10.0.0.50", cieSpec{proto: netip.MustParseAddr("10.0.0.50")}, false},
		{"10.0.0.50,198.51.100.2", cieSpec{proto: netip.MustParseAddr("10.0.0.50"), nbma: s1NBMA}, false},
		{"10.0.0.2,-,0", cieSpec{proto: netip.MustParseAddr("10.0.0.2"), hasHold: true}, false},
		{"10.0.0.2,,65535", cieSpec{proto: netip.MustParseAddr("10.0.0.2"), holding: 65535, hasHold: true}, false},
		{"nonsense", cieSpec{}, true},
		{"10.0.0.2,-,70000", cieSpec{}, true},
		{"10.0.0.2,a,b,c", cieSpec{}, true},
	} {
		got, err := parseCIE(tc.in)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("parseCIE(%q) = %+v, %v; want %+v, error %v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

// The squat: 200 CIEs in packets of 50, every one decodable.
func TestRegistrationsSplit(t *testing.T) {
	cies, err := rangeCIEs(netip.MustParseAddr("10.0.0.56"), netip.MustParseAddr("10.0.0.255"), netip.Addr{}, nhrp.HostPrefixLength, 65535)
	if err != nil || len(cies) != 200 {
		t.Fatalf("rangeCIEs: %d, %v", len(cies), err)
	}
	pkts := registrations(testHeader, cies, true, 50)
	if len(pkts) != 4 {
		t.Fatalf("%d packets, want 4", len(pkts))
	}
	seen := map[uint32]bool{}
	for _, p := range pkts {
		q := roundTrip(t, p)
		if len(q.CIEs) != 50 || q.Flags&nhrp.FlagRegistrationUnique == 0 || q.CIEs[0].HoldingTime != 65535 || seen[q.RequestID] {
			t.Errorf("packet: %d CIEs, flags %v, holding %d, id %d (repeated %v)", len(q.CIEs), q.Flags, q.CIEs[0].HoldingTime, q.RequestID, seen[q.RequestID])
		}
		seen[q.RequestID] = true
	}
}

func TestForgedPacketsDecode(t *testing.T) {
	third := cieSpec{proto: netip.MustParseAddr("10.0.0.3"), nbma: testHeader.srcNBMA}.cie(1, 300)
	req := nhrp.NewResolutionRequest(s1NBMA, netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.1.3.1"), 77, 600, 0)
	ei, err := errorIndication(testHeader, nhrp.ErrorLoopDetected)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		p    *nhrp.Packet
		want nhrp.Type
	}{
		{resolutionReply(testHeader, 9, []nhrp.CIE{third}), nhrp.TypeResolutionReply},
		{answer(roundTrip(t, req), third), nhrp.TypeResolutionReply},
		{trafficIndication(testHeader, netip.MustParseAddr("10.1.1.1"), netip.MustParseAddr("10.1.2.1")), nhrp.TypeTrafficIndication},
		{ei, nhrp.TypeErrorIndication},
		{purgeRequest(testHeader, false, []netip.Addr{netip.MustParseAddr("10.0.0.2")}), nhrp.TypePurgeRequest},
	} {
		q := roundTrip(t, tc.p)
		if q.Type != tc.want {
			t.Errorf("type %s, want %s", q.Type, tc.want)
		}
	}
	a := roundTrip(t, answer(roundTrip(t, req), third))
	if a.RequestID != 77 || a.SrcProto != req.SrcProto || a.DstProto != req.DstProto || a.CIEs[0].PrefixLength != 1 || a.CIEs[0].ClientProto != third.ClientProto {
		t.Errorf("answer: %+v", a)
	}
	if id, ok := nhrp.PeekRequestID(ei.Payload); !ok || id == 0 {
		t.Errorf("error indication's offending packet has no request id")
	}
}

// The spoofed packet is IPv4 from the spoofed source, GRE with the key
// and protocol NHRP, then the NHRP packet unchanged.
func TestGREIPv4(t *testing.T) {
	p := purgeRequest(testHeader, true, []netip.Addr{netip.MustParseAddr("10.0.0.3")})
	b, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	hub := netip.MustParseAddr("198.51.100.1")
	pkt := greIPv4(hub, s1NBMA, 42, b)
	src, _ := netip.AddrFromSlice(pkt[12:16])
	dst, _ := netip.AddrFromSlice(pkt[16:20])
	if pkt[0] != 0x45 || pkt[9] != 47 || src != hub || dst != s1NBMA || int(pkt[2])<<8|int(pkt[3]) != len(pkt) {
		t.Errorf("IPv4 header % x", pkt[:20])
	}
	if got := pkt[20:28]; string(got) != "\x20\x00\x20\x01\x00\x00\x00\x2a" {
		t.Errorf("GRE header % x, want 20 00 20 01 00 00 00 2a", got)
	}
	if q, err := nhrp.Parse(pkt[28:]); err != nil || q.Type != nhrp.TypePurgeRequest {
		t.Errorf("payload: %v, %v", q, err)
	}
}

// The SYN is GRE with the key and protocol IPv4, an IPv4 header and a TCP
// SYN whose checksums verify (the Internet checksum over them is zero).
func TestGRETCPSYN(t *testing.T) {
	src, dst := netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.0.0.1")
	b := greTCPSYN(42, src, dst, 40000, 179, 7)
	if got := b[:8]; string(got) != "\x20\x00\x08\x00\x00\x00\x00\x2a" {
		t.Errorf("GRE header % x, want 20 00 08 00 00 00 00 2a", got)
	}
	ip, tcp := b[8:28], b[28:]
	if s, _ := netip.AddrFromSlice(ip[12:16]); s != src || ip[9] != 6 || ip[0] != 0x45 || checksum(ip, 0) != 0 {
		t.Errorf("IPv4 header % x", ip)
	}
	pseudo := uint32(10<<8) + 2 + uint32(10<<8) + 1 + 6 + 20
	if tcp[13] != 0x02 || int(tcp[2])<<8|int(tcp[3]) != 179 || checksum(tcp, pseudo) != 0 {
		t.Errorf("TCP header % x", tcp)
	}
}
