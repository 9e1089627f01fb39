package nhrp_test

import (
	"net/netip"
	"path/filepath"
	"testing"

	"github.com/dmvpnd/dmvpnd/nhrp"
)

var (
	hubNBMA   = netip.MustParseAddr("198.51.100.1")
	s1NBMA    = netip.MustParseAddr("198.51.100.2")
	s2NBMA    = netip.MustParseAddr("198.51.100.3")
	hubTunnel = netip.MustParseAddr("10.0.0.1")
	s1Tunnel  = netip.MustParseAddr("10.0.0.2")
	s2Tunnel  = netip.MustParseAddr("10.0.0.3")
	s2LANHost = netip.MustParseAddr("192.168.2.1")
	hub6NBMA  = netip.MustParseAddr("2001:db8::1")
	s16NBMA   = netip.MustParseAddr("2001:db8::2")
	hub6Tun   = netip.MustParseAddr("fd00::1")
	s16Tun    = netip.MustParseAddr("fd00::2")
	s26LAN    = netip.MustParseAddr("fd02::1")
)

// icmpEcho is the first 64 octets of an IPv4 ICMP echo request from
// 192.168.1.1 to 192.168.2.1, the kind of packet a Traffic Indication
// carries.
var icmpEcho = []byte{
	0x45, 0x00, 0x00, 0x54, 0x9e, 0xc1, 0x40, 0x00, 0x3f, 0x01, 0x18, 0x95, 0xc0, 0xa8, 0x01, 0x01,
	0xc0, 0xa8, 0x02, 0x01, 0x08, 0x00, 0x9e, 0x6f, 0x01, 0x0b, 0x00, 0x01, 0xa3, 0x04, 0x09, 0x6b,
	0x00, 0x00, 0x00, 0x00, 0xe2, 0x41, 0x0b, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x11, 0x12, 0x13,
	0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x21, 0x22, 0x23,
}

// sampleGroup is the NHRP group the group samples carry.
const sampleGroup = "branch-2m"

type sample struct {
	name string
	pkt  *nhrp.Packet
}

// samples returns packets of every type, with every extension, over IPv4
// and IPv6 NBMA and protocol addresses. Each call returns fresh values.
func samples() []sample {
	var out []sample
	add := func(name string, p *nhrp.Packet) { out = append(out, sample{name, p}) }

	reg := nhrp.NewRegistrationRequest(s1NBMA, s1Tunnel, hubTunnel, 7, 600, 1400, true)
	reg.SetNATAddress(nhrp.CIE{PrefixLength: 32, ClientNBMA: hubNBMA, ClientProto: hubTunnel})
	reg.SetCleartextAuth([]byte("test123"))
	add("registration-request", reg)

	regReply := reg.Clone()
	regReply.Type = nhrp.TypeRegistrationReply
	regReply.HopCount = 64
	regReply.Extension(nhrp.ExtensionResponderAddress).CIEs = []nhrp.CIE{{
		PrefixLength: 32, HoldingTime: 600, ClientNBMA: hubNBMA, ClientProto: hubTunnel,
	}}
	regReply.Extension(nhrp.ExtensionNATAddress).CIEs = append(regReply.Extension(nhrp.ExtensionNATAddress).CIEs,
		nhrp.CIE{PrefixLength: 32, ClientNBMA: netip.MustParseAddr("203.0.113.9"), ClientProto: s1Tunnel})
	add("registration-reply", regReply)

	res := nhrp.NewResolutionRequest(s1NBMA, s1Tunnel, s2LANHost, 8, 300, 0)
	res.SetNATAddress()
	add("resolution-request", res)

	fwd := res.Clone()
	fwd.HopCount--
	fwd.Extension(nhrp.ExtensionForwardTransit).CIEs = []nhrp.CIE{{HoldingTime: 300, ClientNBMA: hubNBMA, ClientProto: hubTunnel}}
	add("resolution-request-forwarded", fwd)

	rep := fwd.Clone()
	rep.Type = nhrp.TypeResolutionReply
	rep.HopCount = 64
	rep.Flags = nhrp.FlagResolutionRouter | nhrp.FlagResolutionAuthoritative | nhrp.FlagResolutionStableDest | nhrp.FlagResolutionStableSource
	rep.CIEs = []nhrp.CIE{{PrefixLength: 24, HoldingTime: 300, MTU: 1400, Preference: 1, ClientNBMA: s2NBMA, ClientProto: s2Tunnel}}
	rep.Extension(nhrp.ExtensionResponderAddress).CIEs = []nhrp.CIE{{HoldingTime: 300, ClientNBMA: s2NBMA, ClientProto: s2Tunnel}}
	rep.Extension(nhrp.ExtensionReverseTransit).CIEs = []nhrp.CIE{{HoldingTime: 300, ClientNBMA: hubNBMA, ClientProto: hubTunnel}}
	rep.AddExtension(nhrp.Extension{Type: nhrp.ExtensionVendorPrivate, Vendor: nhrp.VendorPrivate{OUI: [3]byte{0x00, 0x00, 0x0c}, Data: []byte{1, 2, 3, 4}}})
	rep.AddExtension(nhrp.Extension{Type: 0x1234, Raw: []byte{0xde, 0xad, 0xbe, 0xef}})
	add("resolution-reply", rep)

	nak := nhrp.NewPacket(nhrp.TypeResolutionReply, s1NBMA, s1Tunnel, s2LANHost)
	nak.RequestID = 9
	nak.Flags = nhrp.FlagResolutionRouter
	nak.CIEs = []nhrp.CIE{{Code: nhrp.CIENoBinding, PrefixLength: 0xFF}}
	add("resolution-reply-nak", nak)

	purge := nhrp.NewPurgeRequest(hubNBMA, hubTunnel, s1Tunnel, 10, false, s2Tunnel, netip.MustParseAddr("10.0.0.4"))
	purge.SetStandardExtensions()
	add("purge-request", purge)

	purgeReply := purge.Clone()
	purgeReply.Type = nhrp.TypePurgeReply
	add("purge-reply", purgeReply)

	offending, err := nhrp.NewRegistrationRequest(s1NBMA, s1Tunnel, hubTunnel, 11, 600, 0, false).Marshal()
	if err != nil {
		panic(err)
	}
	add("error-indication", nhrp.NewErrorIndication(hubNBMA, hubTunnel, s1Tunnel, nhrp.ErrorUnrecognizedExtension, 52, offending))

	ti := nhrp.NewTrafficIndication(hubNBMA, hubTunnel, netip.MustParseAddr("192.168.1.1"), icmpEcho)
	add("traffic-indication", ti)

	tiExt := ti.Clone()
	tiExt.SetStandardExtensions()
	tiExt.SetNATAddress()
	add("traffic-indication-extensions", tiExt)

	reg6 := nhrp.NewRegistrationRequest(s16NBMA, s16Tun, hub6Tun, 12, 600, 1400, false)
	reg6.SetNATAddress(nhrp.CIE{PrefixLength: 128, ClientNBMA: hub6NBMA, ClientProto: hub6Tun})
	add("registration-request-ipv6", reg6)

	res6 := nhrp.NewResolutionRequest(s16NBMA, s16Tun, s26LAN, 13, 300, 0)
	add("resolution-request-ipv6", res6)

	rep6 := res6.Clone()
	rep6.Type = nhrp.TypeResolutionReply
	rep6.Flags |= nhrp.FlagResolutionStableDest
	rep6.CIEs = []nhrp.CIE{{PrefixLength: 64, HoldingTime: 300, ClientNBMA: hub6NBMA, ClientProto: netip.MustParseAddr("fd00::3")}}
	add("resolution-reply-ipv6", rep6)

	// IPv6 over an IPv4 NBMA, the common dual-stack DMVPN.
	mixed := nhrp.NewResolutionRequest(s1NBMA, s16Tun, s26LAN, 14, 300, 0)
	add("resolution-request-ipv6-over-ipv4", mixed)

	// IPv4 over an IPv6 NBMA.
	mixed2 := nhrp.NewRegistrationRequest(s16NBMA, s1Tunnel, hubTunnel, 15, 600, 0, true)
	add("registration-request-ipv4-over-ipv6", mixed2)

	// Cisco's NHRP group (Per-Tunnel QoS) next to another vendor's
	// Vendor-Private extension, which stays opaque.
	regGroup := nhrp.NewRegistrationRequest(s1NBMA, s1Tunnel, hubTunnel, 16, 600, 1400, true)
	if err := regGroup.SetGroup(sampleGroup); err != nil {
		panic(err)
	}
	regGroup.AddExtension(nhrp.Extension{Type: nhrp.ExtensionVendorPrivate, Vendor: nhrp.VendorPrivate{OUI: [3]byte{0x00, 0x00, 0x5e}, Data: []byte{9, 9}}})
	add("registration-request-group", regGroup)

	// The group in a resolution request and its reply (spoke-to-spoke
	// Per-Tunnel QoS: each side learns the other's group).
	resGroup := nhrp.NewResolutionRequest(s1NBMA, s1Tunnel, netip.MustParseAddr("10.0.0.3"), 17, 300, 1400)
	if err := resGroup.SetGroup(sampleGroup); err != nil {
		panic(err)
	}
	add("resolution-request-group", resGroup)
	repGroup := resGroup.Clone()
	repGroup.Type = nhrp.TypeResolutionReply
	repGroup.CIEs = []nhrp.CIE{{PrefixLength: 32, HoldingTime: 300, ClientNBMA: netip.MustParseAddr("198.51.100.3"), ClientProto: netip.MustParseAddr("10.0.0.3")}}
	if err := repGroup.SetGroup("branch-10m"); err != nil {
		panic(err)
	}
	add("resolution-reply-group", repGroup)
	return out
}

// capturedAndSamples is every NHRP packet of FRR's Phase 3 capture and
// every sample, encoded.
func capturedAndSamples(t *testing.T) [][]byte {
	t.Helper()
	var inputs [][]byte
	for _, p := range readNHRP(t, filepath.Join("testdata", "frr-phase3.pcap")) {
		inputs = append(inputs, p.NHRP)
	}
	for _, s := range samples() {
		b, err := s.pkt.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		inputs = append(inputs, b)
	}
	return inputs
}
