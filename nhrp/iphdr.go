package nhrp

import (
	"encoding/binary"
	"net/netip"
)

// IPHeader is the fixed part of an IPv4 (RFC 791 §3.1) or IPv6 (RFC 8200
// §3) header: what a Traffic Indication's payload starts with (the packet
// that was hairpinned), and what carries NHRP and GRE in a capture.
type IPHeader struct {
	// Version is 4 or 6.
	Version int
	// Len is the header's length: IHL x 4 for IPv4 (options included),
	// 40 for IPv6 (extension headers are payload).
	Len int
	// Protocol is IPv4's protocol or IPv6's next header.
	Protocol uint8
	// Length is the length field as sent: IPv4's total length (header
	// included), IPv6's payload length.
	Length int
	Src    netip.Addr
	Dst    netip.Addr
	// FragOffset (in 8-octet units) and MoreFragments are IPv4's; an IPv6
	// fragment header is payload.
	FragOffset    uint16
	MoreFragments bool
}

// ParseIPHeader parses the IP header b starts with. It needs only the
// fixed 20 (IPv4) or 40 (IPv6) octets: an IPv4 header's options may be
// cut off (a Traffic Indication carries a prefix of the packet), so a
// caller that wants what follows the header checks len(b) against Len.
// false: b is shorter than that, its version is neither 4 nor 6, or an
// IPv4 IHL is below 5.
func ParseIPHeader(b []byte) (IPHeader, bool) {
	if len(b) < 1 {
		return IPHeader{}, false
	}
	switch b[0] >> 4 {
	case 4:
		ihl := int(b[0]&0x0f) * 4
		if len(b) < 20 || ihl < 20 {
			return IPHeader{}, false
		}
		frag := binary.BigEndian.Uint16(b[6:])
		return IPHeader{Version: 4, Len: ihl, Protocol: b[9], Length: int(binary.BigEndian.Uint16(b[2:])),
			Src: netip.AddrFrom4([4]byte(b[12:16])), Dst: netip.AddrFrom4([4]byte(b[16:20])),
			FragOffset: frag & 0x1fff, MoreFragments: frag&0x2000 != 0}, true
	case 6:
		if len(b) < 40 {
			return IPHeader{}, false
		}
		return IPHeader{Version: 6, Len: 40, Protocol: b[6], Length: int(binary.BigEndian.Uint16(b[4:])),
			Src: netip.AddrFrom16([16]byte(b[8:24])), Dst: netip.AddrFrom16([16]byte(b[24:40]))}, true
	}
	return IPHeader{}, false
}
