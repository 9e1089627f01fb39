package nhrp_test

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/dmvpnd/dmvpnd/nhrp"
	"github.com/dmvpnd/dmvpnd/nhrp/nhrpcap/nhrpcaptest"
)

// cmpPacket compares packets treating nil and empty slices alike (a Packet
// decoded into reused storage keeps empty, non-nil slices).
var cmpPacket = []cmp.Option{cmpopts.EquateEmpty(), cmp.Comparer(func(a, b netip.Addr) bool { return a == b })}

// reparse is Parse(Marshal(p)), failing the test on either error.
func reparse(t *testing.T, p *nhrp.Packet) *nhrp.Packet {
	t.Helper()
	b, err := p.Marshal()
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	got, err := nhrp.Parse(b)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return got
}

func TestRoundTripSamples(t *testing.T) {
	for _, s := range samples() {
		t.Run(s.name, func(t *testing.T) {
			b, err := s.pkt.Marshal()
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			if len(b) != s.pkt.Len() {
				t.Errorf("Len() = %d, encoded %d octets", s.pkt.Len(), len(b))
			}
			got, err := nhrp.Parse(b)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if diff := cmp.Diff(s.pkt, got, cmpPacket...); diff != "" {
				t.Errorf("decode(encode(p)) differs (-want +got):\n%s", diff)
			}
			if err := roundTrip(b, (*nhrp.Packet).Marshal); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestAppendMarshal(t *testing.T) {
	p := samples()[0].pkt
	want, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	prefix := []byte("prefix")
	got, err := p.AppendMarshal(append([]byte(nil), prefix...))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got[:len(prefix)], prefix) || !bytes.Equal(got[len(prefix):], want) {
		t.Errorf("AppendMarshal = %x, want prefix + %x", got, want)
	}
	// On error the buffer comes back unchanged.
	bad := p.Clone()
	bad.HopCount = 0
	out, err := bad.AppendMarshal(prefix)
	if err == nil || !bytes.Equal(out, prefix) {
		t.Errorf("AppendMarshal(bad) = %q, %v; want %q and an error", out, err, prefix)
	}
}

// TestWireLayout pins the encoding of one packet against a hand-assembled
// byte string, so that encoder and decoder cannot agree on a wrong layout.
func TestWireLayout(t *testing.T) {
	p := nhrp.NewRegistrationRequest(s1NBMA, s1Tunnel, hubTunnel, 0x01020304, 600, 1400, true)
	p.Extensions = []nhrp.Extension{
		{Type: nhrp.ExtensionAuthentication, Compulsory: true, Auth: nhrp.Authentication{Type: nhrp.AuthCleartext, Data: []byte("test123")}},
		{Type: nhrp.ExtensionEnd, Compulsory: true},
	}
	want := []byte{
		0x00, 0x01, 0x08, 0x00, 0, 0, 0, 0, 0, // afn, pro.type, snap
		0x01,       // hop count
		0x00, 0x47, // pktsz 71
		0x00, 0x00, // checksum, patched below
		0x00, 0x34, // extoff 52
		0x01, 0x03, 0x04, 0x00, // version, type, shtl, sstl
		0x04, 0x04, 0x80, 0x02, 0x01, 0x02, 0x03, 0x04, // proto lens, flags U|NAT, request id
		198, 51, 100, 2, 10, 0, 0, 2, 10, 0, 0, 1, // src nbma, src proto, dst proto
		0x00, 0xff, 0x00, 0x00, 0x05, 0x78, 0x02, 0x58, 0x00, 0x00, 0x00, 0x00, // CIE
		0x80, 0x07, 0x00, 0x0b, 0x00, 0x00, 0x00, 0x01, 't', 'e', 's', 't', '1', '2', '3', // auth
		0x80, 0x00, 0x00, 0x00, // end
	}
	// RFC 1071 checksum computed independently of the codec.
	nhrpcaptest.SetNHRPChecksum(want)
	got, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("Marshal:\n got %x\nwant %x", got, want)
	}
}

func TestMarshalErrors(t *testing.T) {
	base := func() *nhrp.Packet { return nhrp.NewResolutionRequest(s1NBMA, s1Tunnel, s2LANHost, 1, 300, 0) }
	tests := []struct {
		name   string
		mutate func(p *nhrp.Packet)
		want   string
	}{
		{"hop count 0", func(p *nhrp.Packet) { p.HopCount = 0 }, "hop count 0"},
		{"unknown type", func(p *nhrp.Packet) { p.Type = 9 }, "unknown packet type 9"},
		{"no source NBMA", func(p *nhrp.Packet) { p.SrcNBMA = netip.Addr{} }, "source NBMA address missing"},
		{"NBMA family mismatch", func(p *nhrp.Packet) { p.SrcNBMA = s16NBMA }, "is 16 octets, want 4"},
		{"dst proto family mismatch", func(p *nhrp.Packet) { p.DstProto = s26LAN }, "destination protocol address fd02::1 is 16 octets, want 4"},
		{"no dst proto", func(p *nhrp.Packet) { p.DstProto = netip.Addr{} }, "destination protocol address missing"},
		{"unsupported AFN", func(p *nhrp.Packet) { p.AFN = 3 }, "unsupported NBMA address family 3"},
		{"unsupported protocol", func(p *nhrp.Packet) { p.ProtocolType = 0x0806 }, "unsupported protocol type 0x0806"},
		{"CIE client family", func(p *nhrp.Packet) { p.CIEs[0].ClientProto = s26LAN }, "CIE 0: nhrp: marshal: client protocol address"},
		{"subaddress too long", func(p *nhrp.Packet) { p.SrcNBMASubaddr = make([]byte, 64) }, "subaddress of 64 octets exceeds 63"},
		{"type bits in length", func(p *nhrp.Packet) { p.SrcNBMAType = 0x41 }, "type bits 0x41/0x00 outside 0xc0"},
		{"payload on resolution", func(p *nhrp.Packet) { p.Payload = []byte{1} }, "carries CIEs, not a payload"},
		{"CIEs on traffic indication", func(p *nhrp.Packet) { p.Type = nhrp.TypeTrafficIndication }, "carries a payload, not CIEs"},
		{"End not last", func(p *nhrp.Packet) {
			p.Extensions = append(p.Extensions, nhrp.Extension{Type: nhrp.ExtensionNATAddress})
		}, "End extension at 3 of 5"},
		{"End with value", func(p *nhrp.Packet) {
			p.Extensions[3].Opaque, p.Extensions[3].Raw = true, []byte{1}
		}, "value of 1 octets in an End extension"},
		{"extension type too large", func(p *nhrp.Packet) { p.Extensions[0].Type = 0x4000 }, "exceeds 14 bits"},
		{"packet too large", func(p *nhrp.Packet) {
			p.AddExtension(nhrp.Extension{Type: 100, Raw: make([]byte, 65536)})
		}, "length 65536 exceeds"},
		{"packet too large total", func(p *nhrp.Packet) {
			p.AddExtension(nhrp.Extension{Type: 100, Raw: make([]byte, 40000)})
			p.AddExtension(nhrp.Extension{Type: 101, Raw: make([]byte, 40000)})
		}, "exceeds 65535"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := base()
			tt.mutate(p)
			_, err := p.Marshal()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Marshal error = %v, want one containing %q", err, tt.want)
			}
			if !strings.HasPrefix(err.Error(), "nhrp: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
		})
	}
}

func TestDerivedFamilies(t *testing.T) {
	p := &nhrp.Packet{Type: nhrp.TypePurgeRequest, HopCount: 3, SrcNBMA: s16NBMA, SrcProto: s1Tunnel, DstProto: hubTunnel}
	got := reparse(t, p)
	if got.AFN != nhrp.AFNIPv6 || got.ProtocolType != nhrp.ProtocolIPv4 || got.Version != 1 {
		t.Errorf("AFN, protocol type, version = %d, %#x, %d; want 2, 0x800, 1", got.AFN, got.ProtocolType, got.Version)
	}
}

func TestExactFieldsSurvive(t *testing.T) {
	// Oddities a peer may send that must come back unchanged.
	p := nhrp.NewResolutionRequest(s1NBMA, s1Tunnel, s2LANHost, 1, 300, 0)
	p.SNAP = [5]byte{1, 2, 3, 4, 5}
	p.SrcNBMAType = nhrp.AddrTypeE164
	p.SrcNBMASubaddr = []byte{0xaa, 0xbb}
	p.SrcNBMASubaddrType = 0x80
	p.CIEs[0].Unused = 0xbeef
	p.CIEs[0].PrefixLength = 0
	p.CIEs[0].ClientNBMAType = nhrp.AddrTypeE164
	p.CIEs[0].ClientNBMASubaddr = []byte{1}
	p.Extensions[0].Reserved = true
	p.Extensions[1].Compulsory = false
	p.AddExtension(nhrp.Extension{Type: nhrp.ExtensionNATAddress, Opaque: true, Raw: []byte{0, 0, 0, 1, 0, 0, 0, 0}})
	if diff := cmp.Diff(p, reparse(t, p), cmpPacket...); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	ti := nhrp.NewTrafficIndication(hubNBMA, hubTunnel, s1Tunnel, icmpEcho)
	ti.Unused = [2]uint16{0x1111, 0x2222}
	ti.TrafficCode = 5
	ei := nhrp.NewErrorIndication(hubNBMA, hubTunnel, s1Tunnel, nhrp.ErrorProtocolError, 12, []byte{1, 2, 3})
	ei.Unused[0] = 0x3333
	for _, p := range []*nhrp.Packet{ti, ei} {
		if diff := cmp.Diff(p, reparse(t, p), cmpPacket...); diff != "" {
			t.Errorf("%s (-want +got):\n%s", p.Type, diff)
		}
	}
}

func TestEffectivePrefixLength(t *testing.T) {
	for _, tt := range []struct {
		wire uint8
		bits int
		want int
	}{{0, 32, 32}, {0xFF, 32, 32}, {32, 32, 32}, {24, 32, 24}, {33, 32, 32}, {64, 128, 64}, {0, 128, 128}} {
		c := nhrp.CIE{PrefixLength: tt.wire}
		if got := c.EffectivePrefixLength(tt.bits); got != tt.want {
			t.Errorf("EffectivePrefixLength(%d) with wire %d = %d, want %d", tt.bits, tt.wire, got, tt.want)
		}
	}
}

func TestFlagNames(t *testing.T) {
	tests := []struct {
		f    nhrp.Flags
		t    nhrp.Type
		want []string
	}{
		{0xc802, nhrp.TypeResolutionRequest, []string{"router", "authoritative", "stable-source", "nat"}},
		{0xf802, nhrp.TypeResolutionReply, []string{"router", "authoritative", "stable-destination", "unique", "stable-source", "nat"}},
		{0x8002, nhrp.TypeRegistrationRequest, []string{"unique", "nat"}},
		{0x8000, nhrp.TypePurgeRequest, []string{"no-reply"}},
		{0x4001, nhrp.TypeRegistrationReply, []string{"0x4000", "0x0001"}},
		{0, nhrp.TypeRegistrationReply, nil},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, tt.f.Names(tt.t)); diff != "" {
			t.Errorf("%#04x.Names(%s) (-want +got):\n%s", uint16(tt.f), tt.t, diff)
		}
	}
}

func TestUnrecognizedCompulsory(t *testing.T) {
	p := nhrp.NewResolutionRequest(s1NBMA, s1Tunnel, s2LANHost, 1, 300, 0)
	if err := p.UnrecognizedCompulsory(); err != nil {
		t.Fatalf("standard extensions: %v", err)
	}
	p.AddExtension(nhrp.Extension{Type: 0x0100, Raw: []byte{1, 2}})                   // not compulsory: fine
	p.AddExtension(nhrp.Extension{Type: 0x0200, Compulsory: true, Raw: []byte{3, 4}}) // compulsory, unknown
	err := p.UnrecognizedCompulsory()
	if err == nil {
		t.Fatal("no error for an unknown compulsory extension")
	}
	b, _ := p.Marshal()
	// The offending extension header is the one with type word 0x8200.
	wantOff := bytes.Index(b, []byte{0x82, 0x00, 0x00, 0x02})
	if err.Code != nhrp.ErrorUnrecognizedExtension || err.Offset != wantOff {
		t.Errorf("got code %d offset %d, want code 1 offset %d", err.Code, err.Offset, wantOff)
	}
}

func TestCloneIsDeep(t *testing.T) {
	for _, s := range samples() {
		c := s.pkt.Clone()
		want, _ := s.pkt.Marshal()
		// Scribble over every slice of the clone.
		for i := range c.SrcNBMASubaddr {
			c.SrcNBMASubaddr[i] ^= 0xff
		}
		for i := range c.Payload {
			c.Payload[i] ^= 0xff
		}
		for i := range c.Extensions {
			e := &c.Extensions[i]
			for j := range e.Raw {
				e.Raw[j] ^= 0xff
			}
			for j := range e.Auth.Data {
				e.Auth.Data[j] ^= 0xff
			}
			for j := range e.Vendor.Data {
				e.Vendor.Data[j] ^= 0xff
			}
			for j := range e.CIEs {
				e.CIEs[j].HoldingTime++
			}
		}
		for j := range c.CIEs {
			c.CIEs[j].HoldingTime++
		}
		got, _ := s.pkt.Marshal()
		if !bytes.Equal(got, want) {
			t.Errorf("%s: mutating the clone changed the original", s.name)
		}
	}
}

func TestPrefixes(t *testing.T) {
	pfx := netip.MustParsePrefix
	p := nhrp.NewPacket(nhrp.TypeResolutionReply, s2NBMA, s2Tunnel, netip.MustParseAddr("192.168.1.77"))
	tests := []struct {
		cie       nhrp.CIE
		dst, cli  netip.Prefix
		dstPacket *nhrp.Packet
	}{
		{nhrp.CIE{PrefixLength: 24, ClientProto: s2Tunnel}, pfx("192.168.1.0/24"), pfx("10.0.0.0/24"), p},
		{nhrp.CIE{PrefixLength: 0, ClientProto: s2Tunnel}, pfx("192.168.1.77/32"), pfx("10.0.0.3/32"), p},
		{nhrp.CIE{PrefixLength: 0xFF}, pfx("192.168.1.77/32"), netip.Prefix{}, p},
		{nhrp.CIE{PrefixLength: 64, ClientProto: netip.MustParseAddr("fd00::3")}, pfx("fd02::/64"), pfx("fd00::/64"),
			nhrp.NewPacket(nhrp.TypeResolutionReply, s16NBMA, s16Tun, s26LAN)},
	}
	for _, tt := range tests {
		if got := tt.dstPacket.DestinationPrefix(&tt.cie); got != tt.dst {
			t.Errorf("DestinationPrefix(%+v) = %v, want %v", tt.cie, got, tt.dst)
		}
		if got := tt.cie.ClientPrefix(); got != tt.cli {
			t.Errorf("ClientPrefix(%+v) = %v, want %v", tt.cie, got, tt.cli)
		}
	}
	if got := (&nhrp.Packet{}).DestinationPrefix(&nhrp.CIE{}); got.IsValid() {
		t.Errorf("DestinationPrefix without a destination = %v", got)
	}
}
